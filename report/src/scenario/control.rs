//! The scenario's side of the back end's host control socket (spec §9):
//! `configure` and `start` requests and the limits of an `info` reply.

use super::plan::SourceStart;
use super::schema::DeviceLimits;

/// The CONFIGURE body of a program (spec §6.1.2), in device units: the back
/// end's wire struct.
pub use irqstorm_backend::protocol::ConfigureBody;
use irqstorm_backend::protocol::{Jitter as WireJitter, Mode as WireMode};

/// Host-control-socket views of a CONFIGURE body (spec §9).
pub trait ConfigureBodyExt {
    /// Name of `mode` as the host control socket spells it.
    fn mode_name(&self) -> &'static str;
    /// Name of `jitter` as the host control socket spells it.
    fn jitter_name(&self) -> &'static str;
    /// The host control socket's `configure` request for `source` on
    /// `device`, one JSON line.
    fn control_configure(&self, source: u16, device: u32) -> serde_json::Value;
}

impl ConfigureBodyExt for ConfigureBody {
    fn mode_name(&self) -> &'static str {
        WireMode::from_u8(self.mode).map_or("off", WireMode::name)
    }

    fn jitter_name(&self) -> &'static str {
        WireJitter::from_u8(self.jitter).map_or("none", WireJitter::name)
    }

    fn control_configure(&self, source: u16, device: u32) -> serde_json::Value {
        serde_json::json!({
            "cmd": "configure",
            "device": device,
            "source": source,
            "mode": self.mode_name(),
            "jitter": self.jitter_name(),
            "burst": self.burst,
            "rate_hz": self.rate_hz,
            "period_ns": self.period_ns,
            "count": self.count,
            "duration_ns": self.duration_ns,
            "jitter_ns": self.jitter_ns,
            "moderation_events": self.moderation_events,
            "moderation_delay_us": self.moderation_delay_us,
            "seed": self.seed,
        })
    }
}

impl SourceStart {
    /// The host control socket's `start` request (spec §9).
    pub fn control_start(&self, device: u32) -> serde_json::Value {
        serde_json::json!({
            "cmd": "start",
            "device": device,
            "source": self.id,
            "start_delay_ns": self.start_delay_ms * 1_000_000,
        })
    }
}

impl DeviceLimits {
    /// The limits from the host control socket's `info` reply (spec §9);
    /// `moderation` is taken from `self` (the feature is negotiated later).
    pub fn with_info(&self, info: &serde_json::Value) -> Result<DeviceLimits, String> {
        let get = |k: &str| -> Result<u64, String> {
            info.get(k)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| format!("info reply lacks `{k}`"))
        };
        let narrow = |k: &str, max: u64| -> Result<u64, String> {
            let v = get(k)?;
            if v > max {
                Err(format!("info reply: `{k}` = {v} is out of range"))
            } else {
                Ok(v)
            }
        };
        Ok(DeviceLimits {
            num_sources: narrow("num_sources", u16::MAX as u64)? as u16,
            max_rate_hz: narrow("max_rate_hz", u32::MAX as u64)? as u32,
            min_period_ns: narrow("min_period_ns", u32::MAX as u64)? as u32,
            max_burst: narrow("max_burst", u32::MAX as u64)? as u32,
            moderation: self.moderation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load;
    use std::path::Path;

    #[test]
    fn control_socket_requests() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
        let s = load(dir.join("default.toml")).unwrap();
        let plan = s.plan();
        let storm = plan[1].starts.iter().find(|x| x.id == 14).unwrap();
        let c = storm.body.control_configure(storm.id, 2);
        assert_eq!(c["cmd"], "configure");
        assert_eq!(c["device"], 2);
        assert_eq!(c["mode"], "storm");
        assert_eq!(c["jitter"], "exponential");
        assert_eq!(c["rate_hz"], 5000);
        assert_eq!(c["burst"], 8);
        assert_eq!(c["period_ns"], 0);
        assert_eq!(c["duration_ns"], 1_000_000_000u64);
        let st = storm.control_start(2);
        assert_eq!(st["start_delay_ns"], 1_000_000_000u64);
        let timer = plan[1].starts.iter().find(|x| x.id == 0).unwrap();
        let c = timer.body.control_configure(0, 0);
        assert_eq!(
            (
                c["mode"].as_str(),
                c["period_ns"].as_u64(),
                c["burst"].as_u64()
            ),
            (Some("periodic"), Some(2_000_000), Some(0))
        );
        assert_eq!(c["jitter_ns"], 100_000);

        let info = serde_json::json!({"num_sources": 4, "max_rate_hz": 1000, "min_period_ns": 2000, "max_burst": 8, "max_outstanding": 5});
        let lim = s.device.with_info(&info).unwrap();
        assert_eq!(
            (lim.num_sources, lim.max_rate_hz, lim.max_burst),
            (4, 1000, 8)
        );
        let e = s.validate_against(&lim).unwrap_err();
        assert!(e.iter().any(|p| p.field == "sources[4].id"), "{e:?}");
        assert!(s
            .device
            .with_info(&serde_json::json!({}))
            .unwrap_err()
            .contains("num_sources"));
    }
}
