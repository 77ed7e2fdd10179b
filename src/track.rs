//! IoU tracker: per-frame detections → tracked objects with stable ids and new/update/end events,
//! and which objects the fallback host should check (score in the band) and what it answered.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Band, LabelThresholds, TrackerConfig};
use crate::vision::BBox;

/// Below this IoU between the last reported box and the current one, a reported object's move is
/// worth an `update` event.
const MOVED_IOU: f32 = 0.8;

/// A tracked object as it appears in events (serialised into MQTT JSON by the publisher).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackedObject {
    /// Unique id, a UUID v7 string.
    pub id: String,
    /// The camera it was seen by.
    pub camera: String,
    /// What it is.
    pub label: String,
    /// Score of the latest matched detection.
    pub score: f32,
    /// Best score seen.
    pub top_score: f32,
    /// Latest box as `[x1, y1, x2, y2]` in original-image pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Unix seconds of the first detection.
    pub start_time: f64,
    /// Unix seconds at which it ended; `None` while active.
    pub end_time: Option<f64>,
    /// Number of frames in which it was matched, the first included.
    pub frames: u32,
    /// Id of the model that produced it.
    pub model: String,
    /// Who judged it last: `"edge"`, or `"host"` once the fallback host has answered.
    pub source: String,
    /// Set when its score fell in the camera's fallback band: `false` until the host answers
    /// (and for good when the host is down or late), `true` once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The host model's score for it (0 when the host found nothing there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_score: Option<f32>,
    /// The host model's label for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_label: Option<String>,
    /// The host model's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_model: Option<String>,
}

/// An object whose score fell in the band, to be sent to the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Uncertain {
    /// Object id.
    pub id: String,
    /// The edge's label.
    pub label: String,
    /// The edge's latest score.
    pub score: f32,
    /// Its latest box in original-image pixels.
    pub bbox: BBox,
}

/// What the host said about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVerdict {
    /// Object id.
    pub id: String,
    /// The host model's label.
    pub label: String,
    /// The host model's score (0 when it found nothing there).
    pub score: f32,
    /// The host model's name.
    pub model: String,
}

/// Where an object stands with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Not (or no longer) waiting: it may be sent when its score is in the band.
    Free,
    /// Its score is in the band; [`Tracker::take_uncertain`] hands it out.
    Wanted,
    /// Sent; the answer is outstanding.
    Pending,
    /// The host answered.
    Answered,
}

/// What happened to a tracked object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// First report of an object.
    New,
    /// A reported object's best score rose or its box moved.
    Update,
    /// A reported object is gone.
    End,
}

/// One event: `before` is the object as last reported (None for `new`), `after` as it is now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The object as in the previous event for its id; `None` for `new`.
    pub before: Option<TrackedObject>,
    /// The object now.
    pub after: TrackedObject,
}

/// One object being followed, reported or not yet.
#[derive(Debug)]
struct Track {
    object: TrackedObject,
    /// The object as in its last event; `None` until it is reported.
    reported: Option<TrackedObject>,
    /// Consecutive frames without a match.
    missed: u32,
    /// Where it stands with the host.
    ask: Ask,
}

impl Track {
    fn bbox(&self) -> BBox {
        to_bbox(self.object.bbox)
    }

    /// Marks the object for the host when its latest score is in `band` and it is not already
    /// sent or answered.
    fn flag(&mut self, band: Option<&Band>) {
        if self.ask == Ask::Free && band.is_some_and(|b| b.contains(self.object.score)) {
            self.ask = Ask::Wanted;
            self.object.verified = Some(false);
        }
    }

    /// Emits `new` or `update` if due, and remembers what was reported.
    fn report(&mut self, thresholds: LabelThresholds, events: &mut Vec<Event>) {
        let kind = match &self.reported {
            None if self.object.top_score >= thresholds.threshold => EventKind::New,
            None => return,
            Some(last)
                if self.object.top_score > last.top_score
                    || to_bbox(last.bbox).iou(&self.bbox()) < MOVED_IOU =>
            {
                EventKind::Update
            }
            Some(_) => return,
        };
        let before = self.reported.replace(self.object.clone());
        events.push(Event {
            kind,
            before,
            after: self.object.clone(),
        });
    }

    /// Ends the object: an `end` event if it had been reported, nothing otherwise.
    fn end(mut self, now: f64) -> Option<Event> {
        let before = self.reported?;
        self.object.end_time = Some(now);
        Some(Event {
            kind: EventKind::End,
            before: Some(before),
            after: self.object,
        })
    }
}

/// Follows the objects of one camera from frame to frame.
#[derive(Debug)]
pub struct Tracker {
    camera: String,
    model: String,
    config: TrackerConfig,
    /// Active objects in order of creation, which fixes the order of events.
    tracks: Vec<Track>,
    /// Every label that has ever had a reported object.
    seen: BTreeSet<String>,
    /// Scores to send to the fallback host; `None` when the camera has no fallback.
    band: Option<Band>,
}

impl Tracker {
    /// A tracker with no objects for `camera`, whose detections come from model `model`.
    pub fn new(camera: &str, model: &str, config: TrackerConfig) -> Tracker {
        Tracker {
            camera: camera.to_owned(),
            model: model.to_owned(),
            config,
            tracks: Vec::new(),
            seen: BTreeSet::new(),
            band: None,
        }
    }

    /// Feeds one frame's detections (label, score, box in original pixels) taken at `now` (unix
    /// seconds).
    ///
    /// A NaN score counts as 0 and cannot start an object; scores are clamped to 0..=1.
    /// Detections with a non-finite box coordinate are ignored.
    pub fn update(&mut self, detections: &[(String, f32, BBox)], now: f64) -> Vec<Event> {
        let detections: Vec<(&str, f32, bool, BBox)> = detections
            .iter()
            .filter(|(_, _, b)| b.to_array().iter().all(|v| v.is_finite()))
            .map(|(label, score, bbox)| {
                let nan = score.is_nan();
                let score = if nan { 0.0 } else { score.clamp(0.0, 1.0) };
                (label.as_str(), score, !nan, *bbox)
            })
            .collect();

        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            let bbox = track.bbox();
            for (d, (label, _, _, dbox)) in detections.iter().enumerate() {
                if *label != track.object.label {
                    continue;
                }
                let iou = bbox.iou(dbox);
                if iou >= self.config.iou {
                    pairs.push((iou, t, d));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

        let mut track_match: Vec<Option<usize>> = vec![None; self.tracks.len()];
        let mut det_taken = vec![false; detections.len()];
        for (_, t, d) in pairs {
            if track_match[t].is_none() && !det_taken[d] {
                track_match[t] = Some(d);
                det_taken[d] = true;
            }
        }

        let mut events = Vec::new();
        let mut kept = Vec::with_capacity(self.tracks.len());
        for (mut track, matched) in std::mem::take(&mut self.tracks)
            .into_iter()
            .zip(track_match)
        {
            match matched {
                Some(d) => {
                    let (_, score, _, bbox) = detections[d];
                    let object = &mut track.object;
                    object.score = score;
                    object.top_score = object.top_score.max(score);
                    object.bbox = bbox.to_array();
                    object.frames = object.frames.saturating_add(1);
                    track.missed = 0;
                    track.flag(self.band.as_ref());
                }
                None => {
                    track.missed = track.missed.saturating_add(1);
                    if track.missed >= self.config.max_missed {
                        events.extend(track.end(now));
                        continue;
                    }
                }
            }
            track.report(self.config.thresholds(&track.object.label), &mut events);
            kept.push(track);
        }
        self.tracks = kept;

        for (d, &(label, score, real, bbox)) in detections.iter().enumerate() {
            let thresholds = self.config.thresholds(label);
            if det_taken[d] || !real || score < thresholds.min_score {
                continue;
            }
            let mut track = Track {
                object: TrackedObject {
                    id: uuid::Uuid::now_v7().to_string(),
                    camera: self.camera.clone(),
                    label: label.to_owned(),
                    score,
                    top_score: score,
                    bbox: bbox.to_array(),
                    start_time: now,
                    end_time: None,
                    frames: 1,
                    model: self.model.clone(),
                    source: "edge".to_owned(),
                    verified: None,
                    host_score: None,
                    host_label: None,
                    host_model: None,
                },
                reported: None,
                missed: 0,
                ask: Ask::Free,
            };
            track.flag(self.band.as_ref());
            track.report(thresholds, &mut events);
            self.tracks.push(track);
        }

        for track in &self.tracks {
            if track.reported.is_some() {
                self.seen.insert(track.object.label.clone());
            }
        }
        events
    }

    /// Sends objects scored in `band` to the fallback host from now on.
    pub fn escalate(&mut self, band: Band) {
        self.band = Some(band);
    }

    /// The objects flagged for the host since the last call; they now wait for its answer.
    pub fn take_uncertain(&mut self) -> Vec<Uncertain> {
        self.tracks
            .iter_mut()
            .filter(|t| t.ask == Ask::Wanted)
            .map(|t| {
                t.ask = Ask::Pending;
                Uncertain {
                    id: t.object.id.clone(),
                    label: t.object.label.clone(),
                    score: t.object.score,
                    bbox: t.bbox(),
                }
            })
            .collect()
    }

    /// The host gave no answer for `ids` (refused, failed or late): they stay `verified: false`
    /// and may be sent again when a later score of theirs is in the band.
    pub fn unanswered(&mut self, ids: &[String]) {
        for track in self
            .tracks
            .iter_mut()
            .filter(|t| ids.contains(&t.object.id))
        {
            if track.ask == Ask::Pending {
                track.ask = Ask::Free;
            }
        }
    }

    /// Applies the host's answer: the object becomes `source: "host"`, `verified: true` with the
    /// host's score and label, reported in an `update` event, or in a `new` one when the edge
    /// had not reported it and the host's score reaches the threshold. `None` when the object
    /// has ended meanwhile.
    pub fn verify(&mut self, verdict: HostVerdict) -> Option<Vec<Event>> {
        let track = self.tracks.iter_mut().find(|t| t.object.id == verdict.id)?;
        track.ask = Ask::Answered;
        let object = &mut track.object;
        object.source = "host".to_owned();
        object.verified = Some(true);
        object.host_score = Some(verdict.score);
        object.host_label = Some(verdict.label);
        object.host_model = Some(verdict.model);
        let threshold = self.config.thresholds(&object.label).threshold;
        let kind = match &track.reported {
            Some(_) => EventKind::Update,
            None if verdict.score >= threshold => EventKind::New,
            None => return Some(Vec::new()),
        };
        self.seen.insert(object.label.clone());
        let before = track.reported.replace(object.clone());
        Some(vec![Event {
            kind,
            before,
            after: object.clone(),
        }])
    }

    /// Ends every object (shutdown, camera disabled): `end` events for the reported ones.
    pub fn end_all(&mut self, now: f64) -> Vec<Event> {
        std::mem::take(&mut self.tracks)
            .into_iter()
            .filter_map(|track| track.end(now))
            .collect()
    }

    /// Reported (active, above threshold) objects per label; labels that had objects but now have
    /// none map to 0 (so the publisher can reset a retained count). Never forget a label once seen.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> =
            self.seen.iter().map(|label| (label.clone(), 0)).collect();
        for track in self.tracks.iter().filter(|t| t.reported.is_some()) {
            *counts.entry(track.object.label.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Replace thresholds at run time (from an MQTT command). Objects already reported stay
    /// reported; the new thresholds apply from the next frame.
    pub fn set_config(&mut self, config: TrackerConfig) {
        self.config = config;
    }
}

fn to_bbox([x1, y1, x2, y2]: [f32; 4]) -> BBox {
    BBox { x1, y1, x2, y2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TrackerConfig {
        TrackerConfig {
            default: LabelThresholds {
                min_score: 0.4,
                threshold: 0.7,
            },
            labels: BTreeMap::new(),
            iou: 0.3,
            max_missed: 3,
        }
    }

    fn tracker() -> Tracker {
        Tracker::new("front", "yolo", config())
    }

    fn det(label: &str, score: f32, x: f32) -> (String, f32, BBox) {
        let bbox = BBox {
            x1: x,
            y1: 0.0,
            x2: x + 100.0,
            y2: 100.0,
        };
        (label.to_owned(), score, bbox)
    }

    fn kinds(events: &[Event]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn moving_box_keeps_its_id() {
        let mut t = tracker();
        let first = t.update(&[det("person", 0.9, 0.0)], 0.0);
        assert_eq!(kinds(&first), [EventKind::New]);
        let id = first[0].after.id.clone();
        for step in 1..10 {
            let x = step as f32 * 30.0;
            for e in t.update(&[det("person", 0.9, x)], step as f64) {
                assert_eq!(e.after.id, id);
                assert_ne!(e.kind, EventKind::New);
            }
        }
        let end = t.end_all(10.0);
        assert_eq!(end.len(), 1);
        assert_eq!(end[0].after.id, id);
        assert_eq!(end[0].after.frames, 10);
        assert_eq!(end[0].after.bbox, [270.0, 0.0, 370.0, 100.0]);
    }

    #[test]
    fn new_is_emitted_only_once_threshold_is_crossed() {
        let mut t = tracker();
        assert!(t.update(&[det("person", 0.5, 0.0)], 0.0).is_empty());
        assert!(t.update(&[det("person", 0.6, 0.0)], 1.0).is_empty());
        assert!(t.counts().is_empty());
        let events = t.update(&[det("person", 0.8, 0.0)], 2.0);
        assert_eq!(kinds(&events), [EventKind::New]);
        let new = &events[0];
        assert_eq!(new.before, None);
        assert_eq!(new.after.score, 0.8);
        assert_eq!(new.after.top_score, 0.8);
        assert_eq!(new.after.start_time, 0.0);
        assert_eq!(new.after.frames, 3);
        assert_eq!(new.after.camera, "front");
        assert_eq!(new.after.model, "yolo");
        assert_eq!(new.after.source, "edge");
        assert_eq!(new.after.end_time, None);
        assert_eq!(t.counts(), BTreeMap::from([("person".to_owned(), 1)]));
    }

    #[test]
    fn detections_below_min_score_start_no_object() {
        let mut t = tracker();
        assert!(t.update(&[det("person", 0.3, 0.0)], 0.0).is_empty());
        // Had the weak detection started an object, this one would have matched it (frames 2).
        let events = t.update(&[det("person", 0.9, 0.0)], 1.0);
        assert_eq!(kinds(&events), [EventKind::New]);
        assert_eq!(events[0].after.frames, 1);
        assert_eq!(events[0].after.start_time, 1.0);
    }

    #[test]
    fn label_thresholds_override_the_default() {
        let mut config = config();
        config.labels.insert(
            "car".to_owned(),
            LabelThresholds {
                min_score: 0.1,
                threshold: 0.2,
            },
        );
        assert_eq!(config.thresholds("car").threshold, 0.2);
        assert_eq!(config.thresholds("dog"), config.default);
        let mut t = Tracker::new("front", "yolo", config);
        let events = t.update(&[det("car", 0.25, 0.0), det("dog", 0.25, 500.0)], 0.0);
        assert_eq!(kinds(&events), [EventKind::New]);
        assert_eq!(events[0].after.label, "car");
        assert_eq!(t.counts(), BTreeMap::from([("car".to_owned(), 1)]));
    }

    #[test]
    fn object_ends_after_max_missed_frames_with_end_time() {
        let mut t = tracker();
        let new = t.update(&[det("person", 0.9, 0.0)], 0.0);
        assert!(t.update(&[], 1.0).is_empty());
        assert!(t.update(&[], 2.0).is_empty());
        let events = t.update(&[], 3.0);
        assert_eq!(kinds(&events), [EventKind::End]);
        let end = &events[0];
        assert_eq!(end.after.id, new[0].after.id);
        assert_eq!(end.after.end_time, Some(3.0));
        assert_eq!(end.before.as_ref(), Some(&new[0].after));
        assert!(t.update(&[], 4.0).is_empty());
    }

    #[test]
    fn a_match_resets_the_missed_count() {
        let mut t = tracker();
        t.update(&[det("person", 0.9, 0.0)], 0.0);
        t.update(&[], 1.0);
        t.update(&[], 2.0);
        assert!(t.update(&[det("person", 0.9, 0.0)], 3.0).is_empty());
        assert!(t.update(&[], 4.0).is_empty());
        assert!(t.update(&[], 5.0).is_empty());
        assert_eq!(kinds(&t.update(&[], 6.0)), [EventKind::End]);
    }

    #[test]
    fn unreported_objects_end_silently() {
        let mut t = tracker();
        t.update(&[det("person", 0.5, 0.0)], 0.0);
        for now in 1..10 {
            assert!(t.update(&[], now as f64).is_empty());
        }
        t.update(&[det("person", 0.5, 0.0)], 10.0);
        assert!(t.end_all(11.0).is_empty());
    }

    #[test]
    fn still_object_emits_no_updates() {
        let mut t = tracker();
        t.update(&[det("person", 0.9, 0.0)], 0.0);
        for step in 1..20 {
            // Jitter of a pixel and a lower score are not news.
            let x = (step % 2) as f32;
            assert!(t.update(&[det("person", 0.85, x)], step as f64).is_empty());
        }
    }

    #[test]
    fn update_on_higher_top_score_or_large_move_with_previous_as_before() {
        let mut t = tracker();
        let new = t.update(&[det("person", 0.8, 0.0)], 0.0);
        let events = t.update(&[det("person", 0.9, 0.0)], 1.0);
        assert_eq!(kinds(&events), [EventKind::Update]);
        assert_eq!(events[0].before.as_ref(), Some(&new[0].after));
        assert_eq!(events[0].after.top_score, 0.9);
        let raised = events[0].after.clone();

        // IoU of boxes 20 px apart is 80 / 120 < 0.8.
        let events = t.update(&[det("person", 0.7, 20.0)], 2.0);
        assert_eq!(kinds(&events), [EventKind::Update]);
        assert_eq!(events[0].before.as_ref(), Some(&raised));
        assert_eq!(events[0].after.score, 0.7);
        assert_eq!(events[0].after.top_score, 0.9);
        assert_eq!(events[0].after.bbox, [20.0, 0.0, 120.0, 100.0]);
    }

    #[test]
    fn counts_go_back_to_zero_for_a_label() {
        let mut t = tracker();
        t.update(&[det("person", 0.9, 0.0), det("person", 0.9, 500.0)], 0.0);
        assert_eq!(t.counts(), BTreeMap::from([("person".to_owned(), 2)]));
        for now in 1..=3 {
            t.update(&[], now as f64);
        }
        assert_eq!(t.counts(), BTreeMap::from([("person".to_owned(), 0)]));
        t.update(&[det("car", 0.9, 0.0)], 4.0);
        assert_eq!(
            t.counts(),
            BTreeMap::from([("car".to_owned(), 1), ("person".to_owned(), 0)])
        );
    }

    #[test]
    fn end_all_ends_reported_objects_and_clears_the_tracker() {
        let mut t = tracker();
        t.update(
            &[
                det("person", 0.9, 0.0),
                det("car", 0.9, 500.0),
                det("dog", 0.5, 1000.0),
            ],
            0.0,
        );
        let events = t.end_all(5.0);
        assert_eq!(kinds(&events), [EventKind::End, EventKind::End]);
        let labels: Vec<&str> = events.iter().map(|e| e.after.label.as_str()).collect();
        assert_eq!(labels, ["person", "car"]);
        assert!(events.iter().all(|e| e.after.end_time == Some(5.0)));
        assert_eq!(
            t.counts(),
            BTreeMap::from([("car".to_owned(), 0), ("person".to_owned(), 0)])
        );
        assert!(t.end_all(6.0).is_empty());
        assert!(t.update(&[], 7.0).is_empty());
    }

    #[test]
    fn overlapping_objects_of_different_labels_do_not_match() {
        let mut t = tracker();
        let person = t.update(&[det("person", 0.9, 0.0)], 0.0);
        let events = t.update(&[det("dog", 0.9, 0.0)], 1.0);
        assert_eq!(kinds(&events), [EventKind::New]);
        assert_eq!(events[0].after.label, "dog");
        assert_ne!(events[0].after.id, person[0].after.id);
        assert_eq!(
            t.counts(),
            BTreeMap::from([("dog".to_owned(), 1), ("person".to_owned(), 1)])
        );
    }

    #[test]
    fn each_detection_matches_its_best_overlapping_object() {
        let mut t = tracker();
        let events = t.update(&[det("person", 0.9, 0.0), det("person", 0.9, 50.0)], 0.0);
        let (a, b) = (events[0].after.id.clone(), events[1].after.id.clone());
        // The first detection overlaps the first object enough to match (IoU 0.38), but it is the
        // second object's (IoU 0.90); taking pairs in detection order would swap the ids.
        t.update(&[det("person", 0.9, 45.0), det("person", 0.9, 5.0)], 1.0);
        let ended = t.end_all(2.0);
        let by_x: Vec<(f32, &str)> = ended
            .iter()
            .map(|e| (e.after.bbox[0], e.after.id.as_str()))
            .collect();
        assert_eq!(by_x, [(5.0, a.as_str()), (45.0, b.as_str())]);
    }

    #[test]
    fn nan_scores_never_report_and_do_not_panic() {
        let mut t = tracker();
        assert!(t.update(&[det("person", f32::NAN, 0.0)], 0.0).is_empty());
        assert!(t.counts().is_empty());
        t.update(&[det("person", 0.5, 0.0)], 1.0);
        // A NaN detection may keep the object alive but never raises its score.
        assert!(t.update(&[det("person", f32::NAN, 0.0)], 2.0).is_empty());
        let mut bad_box = det("person", 0.9, 0.0);
        bad_box.2.x2 = f32::NAN;
        assert!(t.update(&[bad_box], 3.0).is_empty());
        assert!(t.end_all(4.0).is_empty());
    }

    #[test]
    fn new_thresholds_apply_from_the_next_frame() {
        let mut t = tracker();
        assert!(t.update(&[det("person", 0.5, 0.0)], 0.0).is_empty());
        let mut config = config();
        config.default.threshold = 0.5;
        t.set_config(config);
        assert_eq!(
            kinds(&t.update(&[det("person", 0.5, 0.0)], 1.0)),
            [EventKind::New]
        );
    }

    #[test]
    fn events_serialise_in_frigate_shape() {
        let mut t = tracker();
        let events = t.update(&[det("person", 0.5, 0.0)], 0.0);
        assert!(events.is_empty());
        let events = t.update(&[det("person", 0.75, 0.0)], 1.0);
        let json = serde_json::to_value(&events[0]).expect("event serialises");
        assert_eq!(json["type"], "new");
        assert_eq!(json["before"], serde_json::Value::Null);
        assert_eq!(
            json["after"]["box"],
            serde_json::json!([0.0, 0.0, 100.0, 100.0])
        );
        assert_eq!(json["after"]["top_score"], 0.75);
    }

    fn escalating() -> Tracker {
        let mut t = tracker();
        t.escalate(Band::new(0.5, 0.85).unwrap());
        t
    }

    fn verdict(id: &str, score: f32) -> HostVerdict {
        HostVerdict {
            id: id.to_owned(),
            label: "person".to_owned(),
            score,
            model: "teacher".to_owned(),
        }
    }

    #[test]
    fn objects_scored_in_the_band_are_handed_out_once_and_say_unverified() {
        let mut t = escalating();
        let events = t.update(&[det("person", 0.8, 0.0), det("person", 0.95, 500.0)], 0.0);
        assert_eq!(events[0].after.verified, Some(false));
        assert_eq!(events[1].after.verified, None, "above the band");
        let json = serde_json::to_value(&events[1]).unwrap();
        assert!(json["after"].get("verified").is_none(), "{json}");
        let uncertain = t.take_uncertain();
        assert_eq!(uncertain.len(), 1);
        assert_eq!(uncertain[0].id, events[0].after.id);
        assert_eq!(uncertain[0].bbox, det("person", 0.8, 0.0).2);
        t.update(&[det("person", 0.8, 0.0), det("person", 0.95, 500.0)], 1.0);
        assert!(
            t.take_uncertain().is_empty(),
            "already waiting for the host"
        );
        assert!(
            tracker().take_uncertain().is_empty(),
            "no band, nothing to send"
        );
    }

    #[test]
    fn the_hosts_answer_is_an_update_and_sticks_to_the_object() {
        let mut t = escalating();
        let new = t.update(&[det("person", 0.8, 0.0)], 0.0);
        let id = t.take_uncertain()[0].id.clone();
        let events = t.verify(verdict(&id, 0.97)).unwrap();
        assert_eq!(kinds(&events), [EventKind::Update]);
        assert_eq!(events[0].before.as_ref(), Some(&new[0].after));
        let after = &events[0].after;
        assert_eq!(after.source, "host");
        assert_eq!(after.verified, Some(true));
        assert_eq!(after.host_score, Some(0.97));
        assert_eq!(after.host_label.as_deref(), Some("person"));
        assert_eq!(after.host_model.as_deref(), Some("teacher"));
        assert_eq!(after.score, 0.8, "the edge's own score stays");
        t.update(&[det("person", 0.6, 0.0)], 1.0);
        assert!(
            t.take_uncertain().is_empty(),
            "answered objects are not sent again"
        );
        let end = t.end_all(2.0);
        assert_eq!(end[0].after.source, "host");
        assert_eq!(end[0].after.host_score, Some(0.97));
    }

    #[test]
    fn the_host_reports_an_object_the_edge_kept_below_threshold() {
        let mut t = tracker();
        t.escalate(Band::new(0.4, 0.7).unwrap());
        assert!(
            t.update(&[det("person", 0.45, 0.0), det("person", 0.5, 500.0)], 0.0)
                .is_empty()
        );
        let ids: Vec<String> = t.take_uncertain().into_iter().map(|u| u.id).collect();
        let events = t.verify(verdict(&ids[0], 0.9)).unwrap();
        assert_eq!(kinds(&events), [EventKind::New]);
        assert_eq!(events[0].after.source, "host");
        assert_eq!(t.counts(), BTreeMap::from([("person".to_owned(), 1)]));
        assert!(
            t.verify(verdict(&ids[1], 0.1)).unwrap().is_empty(),
            "the host says no"
        );
        assert_eq!(t.end_all(1.0).len(), 1);
    }

    #[test]
    fn unanswered_objects_may_be_sent_again_and_late_answers_find_nothing() {
        let mut t = escalating();
        t.update(&[det("person", 0.8, 0.0)], 0.0);
        let id = t.take_uncertain()[0].id.clone();
        t.unanswered(std::slice::from_ref(&id));
        t.update(&[det("person", 0.9, 0.0)], 1.0);
        assert!(t.take_uncertain().is_empty(), "0.9 is above the band");
        let events = t.update(&[det("person", 0.7, 0.0)], 2.0);
        assert!(events.is_empty());
        assert_eq!(t.take_uncertain()[0].id, id);
        t.end_all(3.0);
        assert_eq!(t.verify(verdict(&id, 0.9)), None);
    }
}
