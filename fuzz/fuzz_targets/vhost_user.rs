// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! libFuzzer target: one fuzzed vhost-user front-end connection per input
//! into the real back end, started once in this process (format and checks:
//! `irqstorm_fuzz::vhost_user`). A panic or abort anywhere, a hang, or a back
//! end that stops serving a well-formed front end is a crash.
#![no_main]

use std::sync::OnceLock;

use irqstorm_fuzz::vhost_user::Server;
use libfuzzer_sys::fuzz_target;

static SERVER: OnceLock<Server> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let server = SERVER.get_or_init(|| match Server::start() {
        Ok(s) => s,
        Err(e) => panic!("vhost_user: starting the back end: {e}"),
    });
    if let Err(v) = server.run(data, false) {
        panic!("vhost_user: {v}");
    }
});
