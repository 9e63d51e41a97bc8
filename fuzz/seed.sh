#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/<target> from real files: the shared fixtures
# (saves, stashes, a D2GS capture), a few small Wine DLLs, /bin/true, the repository's
# schemas and examples, plus small generated inputs (pcap/pcapng wrapping the D2GS capture,
# realm/BNCS streams, patterns, addresses, tokens). Sources that are absent are named and
# skipped. Nothing is copied into the repository: corpus/ is ignored by git.
# Usage: fuzz/seed.sh [FIXTURES_DIR]   (default: ../shared/fixtures from the project root)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
fixtures="${1:-$root/../shared/fixtures}"
corpus="$here/corpus"
mkdir -p "$corpus"

seed() { # seed TARGET FILE...: copies the files that exist
    local target="$1"; shift
    mkdir -p "$corpus/$target"
    for f in "$@"; do
        if [[ -f "$f" ]]; then
            cp "$f" "$corpus/$target/$(basename "$f")"
        else
            echo "seed.sh: $target: $f is absent, skipped" >&2
        fi
    done
}
text() { # text TARGET NAME CONTENT: one seed written with printf %b (escapes allowed)
    mkdir -p "$corpus/$1"
    printf '%b' "$3" > "$corpus/$1/$2"
}
prefixed() { # prefixed TARGET NAME BYTE FILE: FILE's bytes after one mode byte
    [[ -f "$4" ]] || { echo "seed.sh: $1: $4 is absent, skipped" >&2; return 0; }
    mkdir -p "$corpus/$1"
    { printf '%b' "$3"; cat "$4"; } > "$corpus/$1/$2"
}

# --- mcp-static: binaries (PE32, PE32+, ELF) and raw code
wine32=/usr/lib/i386-linux-gnu/wine/i386-windows
wine64=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows
seed static_binary /bin/true "$wine32/normaliz.dll" "$wine32/icmp.dll" "$wine32/sfc.dll"
for dll in normaliz.dll icmp.dll sfc.dll; do # the same names in 64-bit: kept apart
    [[ -f "$wine64/$dll" ]] && cp "$wine64/$dll" "$corpus/static_binary/x64-$dll" ||
        echo "seed.sh: static_binary: $wine64/$dll is absent, skipped" >&2
done
mkdir -p "$corpus/static_disasm"
for f in "$corpus"/static_binary/*; do
    # Code: 4 KiB from where .text usually lies, after an 8-byte load address.
    { printf '\x00\x10\x40\x00\x00\x00\x00\x00'; dd if="$f" bs=4096 skip=1 count=1 status=none; } \
        > "$corpus/static_disasm/$(basename "$f").code"
done
text static_disasm prologue '\x00\x00\x00\x6f\x00\x00\x00\x00\x55\x8b\xec\x83\xec\x08\x8b\x0d\x78\x56\x34\x12\xe8\x00\x00\x00\x00\xff\x15\x00\x10\x00\x6f\xc3\x06\x0f\x0b\xcc'
text static_pattern spaced '8B 0D ?? ?? ?? ?? 85 C9\x00\x90\x8b\x0d\x11\x22\x33\x44\x85\xc9\x8b\x0d\x8b\x0d\x00\x00\x00\x00\x85\xc9'
text static_pattern packed '8B0D????85C9\x00\x8b\x0d\x01\x02\x03\x04\x85\xc9'
text static_pattern wild '? 55 ?? 8B EC\x00\x00\x55\x00\x8b\xec\x55\x8b\xec'

# --- address expressions
text address hex '0x6FAB0000'
text address suffix '6FAB0000h'
text address module 'D2Client.dll+0x11BBFC'
text address module_only 'libc.so.6'
text address json '"Game.exe+0x1_000"'
text address number '18446744073709551615'

# --- mcp-network: the D2GS capture raw, and wrapped in pcap and pcapng; realm and BNCS
dump="$fixtures/d2gs/d2gs_sc.dump"
seed network_d2gs "$dump"
seed network_capture "$dump"
if [[ -f "$dump" ]]; then
    head -c 2048 "$dump" > "$corpus/network_d2gs/d2gs_head"
    python3 - "$dump" "$corpus/network_capture" <<'PY'
import struct, sys
dump, out = open(sys.argv[1], "rb").read(), sys.argv[2]

def tcp(src, dst, sport, dport, seq, flags, payload):
    t = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(t) + len(payload), 1, 0, 64, 6, 0,
                     bytes(src), bytes(dst))
    eth = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
    return eth + ip + t + payload

cli, srv = [10, 0, 0, 2], [10, 0, 0, 1]
def flow(sport, dport, c2s, s2c, chunk):
    """SYN, SYN-ACK, then the client's and the server's bytes in chunks (PSH|ACK)."""
    pk = [tcp(cli, srv, sport, dport, 1000, 0x02, b""), tcp(srv, cli, dport, sport, 5000, 0x12, b"")]
    for data, (a, b, ap, bp, isn) in ((c2s, (cli, srv, sport, dport, 1001)),
                                      (s2c, (srv, cli, dport, sport, 5001))):
        for i in range(0, len(data), chunk):
            pk.append(tcp(a, b, ap, bp, isn + i, 0x18, data[i:i + chunk]))
    return pk

d2gs = flow(50000, 4000, b"\x68" + bytes(36), dump[:12000], 1400)
# A realm exchange (length, id) after the selector, and a BNCS one (FF, id, length).
realm = flow(50001, 6113, b"\x01" + struct.pack("<HB", 7, 1) + b"abcd", struct.pack("<HB", 5, 1) + b"ok", 64)
bncs = flow(50002, 6112, b"\x01" + b"\xff\x50\x08\x00abcd", b"\xff\x25\x08\x00\x01\x02\x03\x04", 64)
packets = d2gs + realm + bncs
# A retransmission and an out-of-order pair in the D2GS flow.
packets[5:5] = [packets[4]]
packets[7], packets[8] = packets[8], packets[7]

with open(f"{out}/d2gs.pcap", "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, p in enumerate(packets):
        f.write(struct.pack("<IIII", 1700000000 + i // 10, (i % 10) * 1000, len(p), len(p)) + p)

def block(kind, body):
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)

with open(f"{out}/d2gs.pcapng", "wb") as f:
    f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    f.write(block(1, struct.pack("<HHI", 1, 0, 65535)))
    for i, p in enumerate(packets[:40]):
        ts = (1700000000 + i) * 1000000
        f.write(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(p), len(p)) + p))
PY
fi
seed network_capture "$HOME/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/pcap-2.5.0/tests/data/packet_snaplen_20.pcap"
# Reassembly: ISN, then segments [seq delta: 2][flags][len][wire extra][payload].
text network_reassembly inorder '\xf0\xff\xff\xff\x00\x00\x02\x00\x00\x01\x00\x18\x04\x00abcd\x05\x00\x18\x04\x00efgh\x09\x00\x11\x00\x00'
text network_reassembly overlap '\x00\x00\x00\x10\x00\x00\x18\x06\x00abcdef\x03\x00\x18\x06\x00defghi\x01\x00\x18\x02\x00bc\x20\x00\x18\x02\x03zz'
text network_battle_net realm_client '\x02\x01\x07\x00\x01abcd\x05\x00\x02xy'
text network_battle_net realm_server '\x00\x05\x00\x01ok\x03\x00\x02'
text network_battle_net bncs_client '\x03\x01\xff\x50\x08\x00abcd\xff\x0a\x04\x00'
text network_battle_net bncs_server '\x01\xff\x25\x08\x00\x01\x02\x03\x04'

# --- mcp-d2: saves and stashes
seed d2_save "$fixtures"/d2s/*.d2s
seed d2_stash "$fixtures"/d2s/*.sss "$fixtures"/d2s/*.d2x

# --- mcp-memory: a layout file (mode byte even) and inline fields (odd)
prefixed memory_layout d2_layouts '\x00' "$root/schemas/layouts/d2-1.13c.json"
text memory_layout inline '\x01[{"name":"hp","offset":"0x10","type":"u32"},{"name":"next","offset":4,"type":"ptr32","layout":[{"name":"id","offset":0,"type":"u16","count":2}]},{"name":"s","offset":8,"type":"cstring","length":16},{"name":"p","offset":12,"type":"ptr32","layout":"UnitAny"}]'

# --- sandbox profiles, coordinator configs and tokens
seed sandbox_profile "$root"/schemas/sandbox/profiles/*.toml
prefixed coordinator_config example_toml '\x00' "$root/examples/coordinator.toml"
prefixed coordinator_config default_toml '\x00' "$root/mcp-coordinator/default.toml"
prefixed coordinator_config claude_json '\x01' "$root/examples/claude_desktop_config.json"
text coordinator_jwt signed '\x01\x00{"sub":"agent-1","exp":1767229200,"nbf":1767225000,"iss":"fuzz-iss","aud":["x","fuzz-aud"]}'
text coordinator_jwt header '\x01{"alg":"HS256","kid":"k1"}\x00{"sub":"a","exp":1767229200,"iss":"fuzz-iss","aud":"fuzz-aud"}'
text coordinator_jwt raw '\x00eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxfQ.c2lnbmF0dXJl'
text coordinator_jwt none '\x00eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.'

for d in "$corpus"/*/; do
    echo "$(basename "$d"): $(find "$d" -type f | wc -l) seeds"
done
