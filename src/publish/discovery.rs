//! Home Assistant MQTT discovery: one device with, per camera, a binary_sensor and a count sensor
//! per label, and inference-speed and fps sensors read from the stats topic.

use serde_json::{Value, json};

use super::topics::Topics;

/// What discovery announces for one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraEntities {
    /// Camera name.
    pub camera: String,
    /// Labels its model can report.
    pub labels: Vec<String>,
}

/// A discovery message: config topic and JSON payload, published retained.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryConfig {
    /// `homeassistant/COMPONENT/NODE/OBJECT/config`.
    pub topic: String,
    /// The entity config.
    pub payload: Value,
}

/// Reduces a name to the characters Home Assistant allows in ids: `[A-Za-z0-9_-]`.
pub fn object_id(parts: &[&str]) -> String {
    parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Every discovery config of a device.
pub fn configs(
    topics: &Topics,
    device_id: &str,
    device_name: &str,
    cameras: &[CameraEntities],
) -> Vec<DiscoveryConfig> {
    let node = object_id(&[device_id]);
    let device = json!({
        "identifiers": [format!("edgemass_{node}")],
        "name": device_name,
        "manufacturer": "edgemass",
        "model": "edgemass agent",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let entity = |component: &str, object: String, name: String, extra: Value| {
        let mut payload = json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "object_id": format!("{node}_{object}"),
            "availability_topic": topics.available(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device.clone(),
        });
        if let (Some(map), Value::Object(extra)) = (payload.as_object_mut(), extra) {
            map.extend(extra);
        }
        DiscoveryConfig {
            topic: topics.discovery(component, &node, &object),
            payload,
        }
    };
    let mut out = Vec::new();
    for cam in cameras {
        for label in &cam.labels {
            let count_topic = topics.count(&cam.camera, label);
            out.push(entity(
                "binary_sensor",
                object_id(&[&cam.camera, label, "occupancy"]),
                format!("{} {label} occupancy", cam.camera),
                json!({
                    "state_topic": count_topic,
                    "value_template": "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}",
                    "device_class": "occupancy",
                }),
            ));
            out.push(entity(
                "sensor",
                object_id(&[&cam.camera, label, "count"]),
                format!("{} {label} count", cam.camera),
                json!({
                    "state_topic": count_topic,
                    "state_class": "measurement",
                    "unit_of_measurement": "objects",
                    "icon": "mdi:counter",
                }),
            ));
        }
        for (metric, name, unit) in [
            ("inference_ms_p50", "inference speed", "ms"),
            ("fps", "fps", "fps"),
        ] {
            out.push(entity(
                "sensor",
                object_id(&[&cam.camera, metric]),
                format!("{} {name}", cam.camera),
                json!({
                    "state_topic": topics.stats(),
                    "value_template": format!("{{{{ value_json.cameras['{}'].{metric} }}}}", cam.camera),
                    "state_class": "measurement",
                    "unit_of_measurement": unit,
                    "entity_category": "diagnostic",
                }),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_gets_an_occupancy_and_a_count_entity() {
        let topics = Topics::new("edgemass", "pi-1", "homeassistant");
        let cams = [CameraEntities {
            camera: "front door".into(),
            labels: vec!["face".into(), "text".into()],
        }];
        let all = configs(&topics, "pi-1", "Pi", &cams);
        assert_eq!(all.len(), 2 * 2 + 2);
        let occupancy = &all[0];
        assert_eq!(
            occupancy.topic,
            "homeassistant/binary_sensor/pi-1/front_door_face_occupancy/config"
        );
        assert_eq!(
            occupancy.payload["state_topic"],
            "edgemass/pi-1/front door/face"
        );
        assert_eq!(
            occupancy.payload["device"]["identifiers"][0],
            "edgemass_pi-1"
        );
        let fps = all.last().unwrap();
        assert_eq!(
            fps.payload["value_template"],
            "{{ value_json.cameras['front door'].fps }}"
        );
        let ids: std::collections::BTreeSet<_> = all
            .iter()
            .map(|c| c.payload["unique_id"].to_string())
            .collect();
        assert_eq!(ids.len(), all.len(), "unique ids are unique");
    }
}
