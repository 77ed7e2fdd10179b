//! A camera's unsure objects to the host and its verdicts back. A detector on the host gets the
//! whole frame at its input size, and its boxes are matched to the edge's by IoU; a classifier
//! gets each object's crop. Requests run on the async runtime; answers come back through a
//! bounded channel that the camera's inference loop reads without waiting.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use image::RgbImage;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use super::FallbackError;
use super::check::{Dim, Input, Signature};
use super::host::{Host, Target};
use super::protocol::{DataType, InferRequest, InferResponse, Tensor, Values};
use crate::config::{Band, EscalationConfig};
use crate::model::manifest::{Manifest, Task};
use crate::model::{Outputs, input_shape};
use crate::queue::{self, Policy, QueueStats, SyncReceiver, SyncSender};
use crate::track::{HostVerdict, Uncertain};
use crate::vision::decode::{self, Context};
use crate::vision::preprocess::input_values;
use crate::vision::{BBox, Transform};

/// Answers waiting for the inference loop; when full, an answer is dropped and counted on the
/// queue `fallback_answers/CAMERA` (its objects stay `verified: false`). Each request sends one
/// answer and at most `max_in_flight` are out, so this fills only while the loop is stuck on a
/// slow frame.
const ANSWERS: usize = 256;

/// Host scores below this are read as "nothing there" (0): the host's own confidence is
/// reported down to here rather than cut at its manifest's threshold.
const LEAST_HOST_SCORE: f32 = 0.01;

/// How the host's model is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// The whole frame; the answer is boxes.
    Frame,
    /// One object's crop; the answer is a class.
    Crop,
}

/// The host's model as the agent sees it: its manifest's input, decoder and labels.
pub struct VisionTeacher {
    manifest: Manifest,
    feed: Feed,
    context: Context,
    match_iou: f32,
}

/// The objects a request answers for, and how its boxes map back to the frame.
pub struct Pending {
    objects: Vec<Uncertain>,
    transform: Transform,
}

/// What came back for objects that were sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The host's verdicts.
    Verdicts(Vec<HostVerdict>),
    /// No usable answer (failure, timeout) for these object ids.
    Unanswered(Vec<String>),
}

impl VisionTeacher {
    /// Reads the manifest of the host's model; its ONNX file need not be here.
    pub fn load(config: &EscalationConfig) -> Result<VisionTeacher, FallbackError> {
        let manifest =
            Manifest::from_path(&config.model).map_err(FallbackError::manifest(&config.model))?;
        let feed = match manifest.task {
            Task::Detect => Feed::Frame,
            Task::Classify => Feed::Crop,
            Task::TextClassify => {
                return Err(FallbackError::manifest(&config.model)(
                    "a camera's host model must be a detect or classify model, not text-classify",
                ));
            }
        };
        let mut context = Context::of(&manifest);
        context.thresholds.score = context.thresholds.score.min(LEAST_HOST_SCORE);
        Ok(VisionTeacher {
            manifest,
            feed,
            context,
            match_iou: config.match_iou,
        })
    }

    /// The manifest's model name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The one image input and the outputs the decoder reads.
    pub fn signature(&self) -> Signature {
        Signature {
            inputs: vec![Input {
                name: self.manifest.input.name.clone(),
                datatype: DataType::Fp32,
                dims: input_shape(&self.manifest).map(Dim::Fixed).to_vec(),
            }],
            outputs: self
                .manifest
                .decoder
                .output_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The request for `objects` of `frame`: the frame itself, or (for a classifier, one object
    /// at a time) the object's crop, at the model's input size.
    pub fn request(&self, frame: &RgbImage, objects: Vec<Uncertain>) -> (InferRequest, Pending) {
        let (data, shape, transform) = match (self.feed, objects.first()) {
            (Feed::Crop, Some(object)) => {
                input_values(&crop(frame, &object.bbox), &self.manifest.input)
            }
            _ => input_values(frame, &self.manifest.input),
        };
        let request = InferRequest {
            id: objects.first().map(|o| o.id.clone()),
            inputs: vec![Tensor {
                name: self.manifest.input.name.clone(),
                shape: shape.to_vec(),
                values: Values::Fp32(data),
            }],
            outputs: self.signature().outputs,
            binary_outputs: true,
        };
        (request, Pending { objects, transform })
    }

    /// The host's verdict on each object of a request: for a detector, the host box overlapping the
    /// object best (at least `match_iou`), or score 0 when there is none; for a classifier, its
    /// best class.
    pub fn verdicts(
        &self,
        pending: &Pending,
        response: &InferResponse,
        model: &str,
    ) -> Result<Vec<HostVerdict>, FallbackError> {
        let mut pairs = Vec::with_capacity(response.outputs.len());
        for tensor in &response.outputs {
            let array = ArrayD::from_shape_vec(IxDyn(&tensor.shape), tensor.values.to_f32())
                .map_err(|_| FallbackError::Answer {
                    model: model.to_owned(),
                    reason: format!("has output `{}` with a wrong element count", tensor.name),
                })?;
            pairs.push((tensor.name.clone(), array));
        }
        let found = decode::decode(&self.manifest.decoder, &Outputs::new(pairs), &self.context)
            .map_err(|source| FallbackError::Decode {
                model: model.to_owned(),
                source,
            })?;
        let verdict = |object: &Uncertain, label: &str, score: f32| HostVerdict {
            id: object.id.clone(),
            label: label.to_owned(),
            score,
            model: model.to_owned(),
        };
        let labels = &self.manifest.labels;
        let label = |class: usize| labels.get(class).map_or("?", String::as_str);
        Ok(match self.feed {
            Feed::Crop => {
                let best = found.first().ok_or_else(|| FallbackError::Answer {
                    model: model.to_owned(),
                    reason: "gave no class".to_owned(),
                })?;
                pending
                    .objects
                    .iter()
                    .map(|o| verdict(o, label(best.class), best.score))
                    .collect()
            }
            Feed::Frame => {
                let found: Vec<_> = found
                    .into_iter()
                    .map(|d| pending.transform.detection(d))
                    .collect();
                pending
                    .objects
                    .iter()
                    .map(|o| {
                        let best = found
                            .iter()
                            .map(|d| (o.bbox.iou(&d.bbox), d))
                            .filter(|(iou, _)| *iou >= self.match_iou)
                            .max_by(|a, b| a.0.total_cmp(&b.0));
                        match best {
                            Some((_, d)) => verdict(o, label(d.class), d.score),
                            None => verdict(o, &o.label, 0.0),
                        }
                    })
                    .collect()
            }
        })
    }

    /// Objects that go together in one request.
    fn groups(&self, objects: Vec<Uncertain>) -> Vec<Vec<Uncertain>> {
        match self.feed {
            Feed::Frame => vec![objects],
            Feed::Crop => objects.into_iter().map(|o| vec![o]).collect(),
        }
    }
}

/// The part of `frame` inside `bbox`, at least one pixel.
fn crop(frame: &RgbImage, bbox: &BBox) -> RgbImage {
    let (w, h) = frame.dimensions();
    let x1 = (bbox.x1.max(0.0) as u32).min(w.saturating_sub(1));
    let y1 = (bbox.y1.max(0.0) as u32).min(h.saturating_sub(1));
    let x2 = (bbox.x2.ceil().max(0.0) as u32).clamp(x1 + 1, w.max(x1 + 1));
    let y2 = (bbox.y2.ceil().max(0.0) as u32).clamp(y1 + 1, h.max(y1 + 1));
    image::imageops::crop_imm(frame, x1, y1, x2 - x1, y2 - y1).to_image()
}

/// One camera's link to the host.
pub struct CameraFallback {
    host: Arc<Host>,
    target: Arc<Target>,
    teacher: Arc<VisionTeacher>,
    band: Band,
    answers_tx: SyncSender<Answer>,
    answers: SyncReceiver<Answer>,
}

impl CameraFallback {
    /// Links the camera `camera` to `host`'s model `target`, described by `teacher`.
    pub fn new(
        camera: &str,
        host: Arc<Host>,
        target: Arc<Target>,
        teacher: VisionTeacher,
        band: Band,
    ) -> Self {
        let stats = QueueStats::new(format!("fallback_answers/{camera}"), ANSWERS, Policy::Drop);
        let (answers_tx, answers) = queue::sync_channel(stats);
        CameraFallback {
            host,
            target,
            teacher: Arc::new(teacher),
            band,
            answers_tx,
            answers,
        }
    }

    /// The host model this camera asks.
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Scores that are sent.
    pub fn band(&self) -> Band {
        self.band
    }

    /// Sends `objects` seen in `frame` without waiting; returns the ids that were not sent
    /// (too many requests out, breaker open, rate budget spent).
    pub fn try_send(&self, frame: &RgbImage, objects: Vec<Uncertain>) -> Vec<String> {
        let mut refused = Vec::new();
        let mut shared: Option<Arc<RgbImage>> = None;
        for group in self.teacher.groups(objects) {
            let Some(admission) = self.host.try_admit() else {
                refused.extend(group.into_iter().map(|o| o.id));
                continue;
            };
            let frame = shared
                .get_or_insert_with(|| Arc::new(frame.clone()))
                .clone();
            let ids: Vec<String> = group.iter().map(|o| o.id.clone()).collect();
            let (host, target, answers) = (
                self.host.clone(),
                self.target.clone(),
                self.answers_tx.clone(),
            );
            let teacher = self.teacher.clone();
            self.host.runtime().spawn(async move {
                let read = teacher.clone();
                let model = target.name.clone();
                let verdicts = host
                    .ask(
                        admission,
                        &target,
                        move || Ok(teacher.request(&frame, group)),
                        move |pending, response| read.verdicts(&pending, &response, &model),
                    )
                    .await;
                let answer = match verdicts {
                    Ok(verdicts) => Answer::Verdicts(verdicts),
                    Err(_) => Answer::Unanswered(ids),
                };
                answers.try_send(answer);
            });
        }
        refused
    }

    /// The answers that have arrived, without waiting.
    pub fn try_answers(&self) -> Vec<Answer> {
        std::iter::from_fn(|| self.answers.try_recv().ok()).collect()
    }

    /// The counters of the queue the answers wait in.
    pub fn answers_queue(&self) -> Arc<QueueStats> {
        self.answers_tx.stats().clone()
    }

    /// Counts answers that found their object gone.
    pub fn late(&self, count: u64) {
        self.host.stats().late.fetch_add(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_stay_inside_the_frame_and_are_never_empty() {
        let frame = RgbImage::new(100, 50);
        let bbox = |x1, y1, x2, y2| BBox { x1, y1, x2, y2 };
        assert_eq!(
            crop(&frame, &bbox(10.2, 5.0, 30.5, 20.0)).dimensions(),
            (21, 15)
        );
        assert_eq!(
            crop(&frame, &bbox(-5.0, -5.0, 500.0, 500.0)).dimensions(),
            (100, 50)
        );
        assert_eq!(
            crop(&frame, &bbox(99.5, 49.5, 99.6, 49.6)).dimensions(),
            (1, 1)
        );
        assert_eq!(
            crop(&frame, &bbox(150.0, 80.0, 160.0, 90.0)).dimensions(),
            (1, 1)
        );
    }
}
