#!/bin/bash
# The containers' health check, with bash alone (no curl in the images):
#   health.sh PORT [PATH]   healthy when GET PATH (default /) on 127.0.0.1:PORT answers with
#                           a status below 500 (an MCP endpoint answers a bare GET with a 4xx;
#                           the coordinator's gateway answers /health with 200 or 503).
port=${1:?port}; path=${2:-/}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
read -r -t 5 proto status _ <&3 || exit 1
case $proto in HTTP/1.*) ;; *) exit 1 ;; esac
[ "${status:-999}" -lt 500 ]
