//! Shared test plumbing: build the fixture game once, run it, start the real `mcp-d2` binary
//! and call tools through rmcp's client.
#![allow(dead_code)]

pub use mcp_testkit::*;
use rmcp::transport::ConfigureCommandExt;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `tests/fixtures/d2game` built: D2Client.dll, d2game (native), d2game.exe (Wine).
pub fn game_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_fixtures(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/d2game/build.sh"),
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "d2game",
            "needs gcc-mingw-w64-x86-64, installed by scripts/test.sh",
        )
    })
}

/// The shared saves (`../shared/fixtures/d2s`, or under `SHARED_FIXTURES`); `None` after
/// [`skipped`] when absent.
pub fn saves_dir() -> Option<PathBuf> {
    shared_fixtures("d2s")
}

/// A running fixture game.
pub struct Game(pub LineProcess);

impl std::ops::Deref for Game {
    type Target = LineProcess;
    fn deref(&self) -> &LineProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Game {
    fn deref_mut(&mut self) -> &mut LineProcess {
        &mut self.0
    }
}

impl Game {
    pub fn native() -> Self {
        let dir = game_dir();
        let mut cmd = Command::new(dir.join("d2game"));
        cmd.arg(dir.join("D2Client.dll"));
        Self::spawn(cmd)
    }

    pub fn spawn(cmd: Command) -> Self {
        Self(LineProcess::spawn(cmd))
    }

    /// Gains 1000 experience through the stdin command.
    pub fn gain(&mut self) {
        self.command("gain");
        assert_eq!(self.line().trim(), "gained");
    }

    /// One step east and one point of life less, through the stdin command.
    pub fn step(&mut self) {
        self.command("step");
        assert_eq!(self.line().trim(), "stepped");
    }

    /// Gains 1000 experience through SIGUSR1 (native build).
    pub fn signal(&mut self) {
        self.signal_usr1("gained");
    }
}

/// Starts `mcp-d2` with the given roots.
pub async fn start(roots: &[&Path]) -> Result<Client, Error> {
    let roots: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-d2")).configure(|c| {
        for r in &roots {
            c.arg("--root").arg(r);
        }
        c.stderr(Stdio::null());
    });
    serve(cmd).await
}

/// Asserts everything the fixture game holds; `exp` is the experience expected now.
pub async fn check_game(client: &Client, pid: u64, game: &Game, exp: u64, wine: bool) {
    let found = ok(client, "find_game", json!({})).await;
    let me = found["games"]
        .as_array()
        .and_then(|g| g.iter().find(|x| x["pid"] == pid))
        .cloned()
        .unwrap_or_else(|| panic!("pid {pid} not in {found}"));
    assert_eq!(me["version"], "1.13c", "{me}");
    assert_eq!(me["pd2"], false);
    assert_eq!(me["is_wine"], wine);
    assert!(
        me["recognised_by"]
            .as_str()
            .is_some_and(|r| r.contains("1.0.13.60")),
        "{me}"
    );
    let d2client = me["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["name"] == "D2Client.dll"))
        .map(|x| parse_hex(&x["base"]));
    assert_eq!(d2client, Some(parse_hex(&game.info["d2client"])));

    let c = ok(client, "character", json!({"pid": pid})).await;
    assert_eq!(c["name"], "FixtureHero");
    assert_eq!(c["class"], json!({"id": 3, "name": "Paladin"}));
    assert_eq!(c["level"], 24);
    assert_eq!(c["experience"], exp);
    assert_eq!(c["gold"], 12345);
    assert_eq!(c["stash_gold"], 250000);
    assert_eq!(c["stats"]["strength"], json!({"value": 45, "base": 25}));
    assert_eq!(c["stats"]["energy"], json!({"value": 15}));
    assert_eq!(c["stats"]["stat_points"], json!({"value": 5}));
    assert_eq!(c["stats"]["skill_points"], json!({"value": 3}));
    assert_eq!(
        [
            c["life"].clone(),
            c["max_life"].clone(),
            c["mana"].clone(),
            c["max_mana"].clone(),
            c["stamina"].clone(),
            c["max_stamina"].clone()
        ],
        [
            json!(300),
            json!(380),
            json!(80),
            json!(90),
            json!(200),
            json!(210)
        ]
    );
    assert_eq!(c["resistances"]["fire"], json!({"value": 40, "max": 80}));
    assert_eq!(
        c["resistances"]["lightning"],
        json!({"value": 30, "max": 75})
    );
    assert_eq!(c["resistances"]["cold"], json!({"value": 25, "max": 75}));
    assert_eq!(c["resistances"]["poison"], json!({"value": 15, "max": 75}));
    assert_eq!(
        c["bonuses"],
        json!({"faster_cast": 20, "faster_hit_recovery": 10, "attack_speed": 15, "run_walk": 20, "magic_find": 150, "gold_find": 50})
    );
    assert_eq!(c["position"], json!({"x": 5120, "y": 5088}));
    assert_eq!(c["act"], 2);
    assert_eq!(c["area"], json!({"id": 40, "name": "Lut Gholein"}));
    assert_eq!(c["unit_id"], 42);
    assert_eq!(
        parse_hex(&c["player_unit"]),
        parse_hex(&game.info["player"])
    );
    let max_life = c["all_stats"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["id"] == 7))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        max_life,
        json!({"id": 7, "name": "max_life", "value": 380, "base": 320})
    );

    let inv = ok(client, "inventory", json!({"pid": pid})).await;
    assert_eq!(
        (inv["count"].clone(), inv["total"].clone()),
        (json!(3), json!(3)),
        "{inv}"
    );
    assert_eq!(
        inv["by_location"],
        json!({"equipped": 1, "inventory": 1, "stash": 1})
    );
    let items = inv["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items[0]["unit_id"], 101);
    assert_eq!(items[0]["location"], "equipped");
    assert_eq!(items[0]["body_location"], 1);
    assert_eq!(items[0]["quality"], json!({"id": 7, "name": "unique"}));
    assert_eq!(items[0]["item_level"], 85);
    assert_eq!(items[1]["location"], "inventory");
    assert_eq!(
        (items[1]["x"].clone(), items[1]["y"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(items[1]["txt_file_no"], 522);
    assert_eq!(
        items[2]["flags"],
        json!({"identified": true, "socketed": true, "ethereal": true, "runeword": true})
    );
    assert_eq!(items[2]["location"], "stash");
    let stash = ok(
        client,
        "inventory",
        json!({"pid": pid, "location": "stash"}),
    )
    .await;
    assert_eq!(
        (stash["count"].clone(), stash["total"].clone()),
        (json!(3), json!(1))
    );
    let second = ok(
        client,
        "inventory",
        json!({"pid": pid, "offset": 1, "limit": 1}),
    )
    .await;
    assert_eq!(second["items"], json!([items[1]]));
    assert_eq!(second["next_offset"], 2);

    let monsters = ok(client, "units", json!({"pid": pid, "type": "monster"})).await;
    let m: Vec<(u64, u64, u64)> = monsters["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            (
                u["unit_id"].as_u64().unwrap_or(0),
                u["x"].as_u64().unwrap_or(0),
                u["y"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(m, vec![(7001, 5130, 5090), (7129, 5140, 5095)]);
    let objects = ok(client, "units", json!({"pid": pid, "type": "object"})).await;
    assert_eq!(objects["items"][0]["unit_id"], 9001);
    assert_eq!(
        (
            objects["items"][0]["x"].clone(),
            objects["items"][0]["y"].clone()
        ),
        (json!(5125), json!(5085))
    );
    let players = ok(client, "units", json!({"pid": pid, "type": "player"})).await;
    assert_eq!(players["total"], 1);
    assert_eq!(players["items"][0]["unit_id"], 42);
    let items = ok(
        client,
        "units",
        json!({"pid": pid, "type": "item", "limit": 2}),
    )
    .await;
    assert_eq!(items["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(items["next_offset"], 2, "{items}");
}
