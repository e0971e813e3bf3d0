// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `irqstorm-fuzz`, the uninstrumented companion of the fuzz targets:
//!
//! - `irqstorm-fuzz seeds TARGET DIR`: writes the target's seed inputs into DIR;
//! - `irqstorm-fuzz show TARGET FILE...`: prints each input as the operations
//!   it decodes to and runs it, so a crash libFuzzer found can be read and
//!   turned into a unit test.

use std::path::Path;
use std::process::ExitCode;

use irqstorm_fuzz::{rings, target_seeds, vhost_user};

fn show(target: &str, data: &[u8]) -> Result<bool, String> {
    Ok(match target {
        "rings" => {
            let (setup, ops) = rings::decode(data);
            println!("{setup:?}");
            for (n, op) in ops.iter().enumerate() {
                println!("{n:4} {op:?}");
            }
            match rings::run(data) {
                Ok(s) => {
                    println!("ok: {s:?}");
                    true
                }
                Err(v) => {
                    println!("VIOLATION: {v}");
                    false
                }
            }
        }
        "vhost_user" => {
            for (n, op) in vhost_user::decode(data).iter().enumerate() {
                println!("{n:4} {op:?}");
            }
            let server = vhost_user::Server::start().map_err(|e| e.to_string())?;
            match server.run(data, true) {
                Ok(s) => {
                    println!("ok: {s:?}");
                    true
                }
                Err(v) => {
                    println!("VIOLATION: {v}");
                    false
                }
            }
        }
        t => return Err(format!("unknown target {t} (rings, vhost_user)")),
    })
}

fn write_seeds(target: &str, dir: &Path) -> Result<(), String> {
    let seeds = target_seeds(target).ok_or_else(|| format!("unknown target {target}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, data) in seeds {
        let p = dir.join(format!("seed-{name}"));
        std::fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["seeds", target, dir] => write_seeds(target, Path::new(dir)).map(|()| true),
        ["show", target, files @ ..] if !files.is_empty() => {
            files.iter().try_fold(true, |ok, f| {
                let data = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
                println!("== {f} ({} bytes)", data.len());
                Ok(show(target, &data)? && ok)
            })
        }
        _ => Err("usage: irqstorm-fuzz seeds TARGET DIR | show TARGET FILE...".into()),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("irqstorm-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}
