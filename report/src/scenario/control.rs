//! The scenario's side of the back end's host control socket (spec §9):
//! `configure` and `start` requests and the limits of an `info` reply, as
//! the typed requests and replies of irqstorm-protocol (which alone spells
//! the JSON).

use irqstorm_protocol::control::{self, Configure, InfoReply, Request, Sources};
use irqstorm_protocol::wire::{Jitter as WireJitter, Mode as WireMode};

use super::plan::SourceStart;
use super::schema::DeviceLimits;

/// The CONFIGURE body of a program (spec §6.1.2), in device units: the
/// wire struct.
pub use irqstorm_protocol::wire::ConfigureBody;

/// Names of a CONFIGURE body's codes, as the host control socket spells them.
pub trait ConfigureBodyExt {
    /// Name of `mode` (`off` for an unknown code).
    fn mode_name(&self) -> &'static str;
    /// Name of `jitter` (`none` for an unknown code).
    fn jitter_name(&self) -> &'static str;
}

impl ConfigureBodyExt for ConfigureBody {
    fn mode_name(&self) -> &'static str {
        WireMode::from_u8(self.mode).map_or("off", WireMode::name)
    }

    fn jitter_name(&self) -> &'static str {
        WireJitter::from_u8(self.jitter).map_or("none", WireJitter::name)
    }
}

impl SourceStart {
    /// The `configure` request for this source on `device`, every field
    /// given.
    pub fn control_configure(&self, device: u32) -> Result<Request, control::Error> {
        Configure::from_body(Some(device), self.id, &self.body).map(Request::Configure)
    }

    /// The `start` request for this source on `device`.
    pub fn control_start(&self, device: u32) -> Request {
        Request::Start {
            device: Some(device),
            source: Some(Sources::One(self.id)),
            start_delay_ns: Some(self.start_delay_ms * 1_000_000),
        }
    }
}

impl DeviceLimits {
    /// The limits from an `info` reply; `moderation` is taken from `self`
    /// (the feature is negotiated later).
    pub fn with_info(&self, info: &InfoReply) -> DeviceLimits {
        DeviceLimits {
            num_sources: info.num_sources,
            max_rate_hz: info.max_rate_hz,
            min_period_ns: info.min_period_ns,
            max_burst: info.max_burst,
            moderation: self.moderation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load;
    use irqstorm_protocol::control::{Reply, Response};
    use std::path::Path;

    /// A request as the JSON object it is sent as.
    fn json(r: &Request) -> serde_json::Value {
        serde_json::from_str(&r.to_line()).unwrap()
    }

    #[test]
    fn control_socket_requests() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("default.toml")).unwrap();
        let plan = s.plan();
        let storm = plan[1].starts.iter().find(|x| x.id == 14).unwrap();
        let c = json(&storm.control_configure(2).unwrap());
        assert_eq!(c["cmd"], "configure");
        assert_eq!(c["device"], 2);
        assert_eq!(c["source"], 14);
        assert_eq!(c["mode"], "storm");
        assert_eq!(c["jitter"], "exponential");
        assert_eq!(c["rate_hz"], 5000);
        assert_eq!(c["burst"], 8);
        assert_eq!(c["period_ns"], 0);
        assert_eq!(c["duration_ns"], 1_000_000_000u64);
        // every field is given: nothing is left to the socket's defaults
        assert_eq!(c.as_object().unwrap().len(), 14, "{c}");
        let st = json(&storm.control_start(2));
        assert_eq!(st["start_delay_ns"], 1_000_000_000u64);
        assert_eq!(
            (st["cmd"].as_str(), st["source"].as_u64()),
            (Some("start"), Some(14))
        );
        let timer = plan[1].starts.iter().find(|x| x.id == 0).unwrap();
        let c = json(&timer.control_configure(0).unwrap());
        assert_eq!(
            (
                c["mode"].as_str(),
                c["period_ns"].as_u64(),
                c["burst"].as_u64()
            ),
            (Some("periodic"), Some(2_000_000), Some(0))
        );
        assert_eq!(c["jitter_ns"], 100_000);

        let info = InfoReply {
            device: 0,
            devices: 1,
            virtio_id: 21,
            connected: true,
            num_sources: 4,
            max_rate_hz: 1000,
            max_outstanding: 5,
            min_period_ns: 2000,
            max_burst: 8,
            device_features: 0,
            negotiated_features: 0,
            host_ns: 0,
            spin: None,
        };
        let lim = s.device.with_info(&info);
        assert_eq!(
            (lim.num_sources, lim.max_rate_hz, lim.max_burst),
            (4, 1000, 8)
        );
        let e = s.validate_against(&lim).unwrap_err();
        assert!(e.iter().any(|p| p.field == "sources[4].id"), "{e:?}");
        // an info reply without the limits is refused when it is read
        let mut partial = serde_json::to_value(&info).unwrap();
        partial.as_object_mut().unwrap().remove("num_sources");
        partial["ok"] = true.into();
        let bad = Request::Info { device: None }.parse_reply(&partial.to_string());
        assert!(bad.unwrap_err().to_string().contains("num_sources"));
        let good = Request::Info { device: None }
            .parse_reply(&Reply::Ok(info.clone()).to_line())
            .unwrap();
        assert_eq!(good, Reply::Ok(Response::Info(info)));
    }
}
