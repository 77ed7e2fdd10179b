//! MQTT topic names of one device (see DESIGN.md): `PREFIX/DEVICE/...` plus Home Assistant's.

/// Builds every topic the agent publishes or subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
    discovery_prefix: String,
}

impl Topics {
    /// Topics under `prefix/device`, discovery under `discovery_prefix`.
    pub fn new(prefix: &str, device: &str, discovery_prefix: &str) -> Topics {
        Topics {
            base: format!("{prefix}/{device}"),
            discovery_prefix: discovery_prefix.to_owned(),
        }
    }

    /// `P/D`, the root of the device's topics.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `online` / `offline`, retained, also the last will.
    pub fn available(&self) -> String {
        format!("{}/available", self.base)
    }

    /// Tracked-object events.
    pub fn events(&self) -> String {
        format!("{}/events", self.base)
    }

    /// Current count of `label` on `camera`, retained.
    pub fn count(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/{label}", self.base)
    }

    /// Latest JPEG of `label` on `camera`, retained.
    pub fn snapshot(&self, camera: &str, label: &str) -> String {
        format!("{}/{camera}/{label}/snapshot", self.base)
    }

    /// Periodic statistics.
    pub fn stats(&self) -> String {
        format!("{}/stats", self.base)
    }

    /// Texts to classify.
    pub fn text_in(&self) -> String {
        format!("{}/text/in", self.base)
    }

    /// Text classification results.
    pub fn text_out(&self) -> String {
        format!("{}/text/out", self.base)
    }

    /// Rejected commands and source failures.
    pub fn error(&self) -> String {
        format!("{}/error", self.base)
    }

    /// Prefix of command topics, `P/D/set/`.
    pub fn set_prefix(&self) -> String {
        format!("{}/set/", self.base)
    }

    /// Subscription filter for all commands.
    pub fn set_filter(&self) -> String {
        format!("{}/set/#", self.base)
    }

    /// Home Assistant's birth/will topic.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// A Home Assistant discovery config topic.
    pub fn discovery(&self, component: &str, node: &str, object: &str) -> String {
        format!(
            "{}/{component}/{node}/{object}/config",
            self.discovery_prefix
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_design_table() {
        let t = Topics::new("edgemass", "pi", "homeassistant");
        assert_eq!(t.available(), "edgemass/pi/available");
        assert_eq!(t.count("front", "face"), "edgemass/pi/front/face");
        assert_eq!(
            t.snapshot("front", "face"),
            "edgemass/pi/front/face/snapshot"
        );
        assert_eq!(t.set_filter(), "edgemass/pi/set/#");
        assert_eq!(
            t.discovery("sensor", "pi", "front_face_count"),
            "homeassistant/sensor/pi/front_face_count/config"
        );
    }
}
