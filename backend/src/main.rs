// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `irqstorm-backend`: the vhost-user back end, or (`ctl`) its control client.

use std::process::exit;

use clap::Parser;
use irqstorm_backend::args::{Args, Command, Config};

fn main() {
    env_logger::init();
    let mut args = Args::parse();
    if let Some(Command::Ctl(c)) = args.command.take() {
        match irqstorm_backend::control::run_ctl(&c.control_socket, c.device, &c.cmd) {
            Ok(true) => exit(0),
            Ok(false) => exit(1),
            Err(e) => {
                eprintln!("irqstorm-backend ctl: {e}");
                exit(2);
            }
        }
    }
    let config = match Config::try_from(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("irqstorm-backend: {e}");
            exit(2);
        }
    };
    if let Err(e) = irqstorm_backend::run(config) {
        log::error!("{e}");
        eprintln!("irqstorm-backend: {e}");
        exit(1);
    }
}
