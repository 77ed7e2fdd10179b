//! The fallback host wired into the pipeline: what each source's `fallback` table names is
//! loaded, and the host is checked once at start. A host model that does not fit its manifest
//! stops the agent with one line saying why; a host that cannot be reached only delays the check
//! to the first request, and the edge answers alone until then.

use std::sync::Arc;

use super::AgentError;
use crate::config::{Band, Config};
use crate::fallback::host::{Host, Target};
use crate::fallback::stats::HostStats;
use crate::fallback::text::{TextFallback, TextTeacher};
use crate::fallback::vision::{CameraFallback, VisionTeacher};
use crate::fallback::{FallbackError, describe};
use crate::publish::client::Handle;
use crate::publish::topics::Topics;

/// Each source's link to the host, ready to hand to its stage.
pub struct Links {
    host: Option<Arc<Host>>,
    cameras: Vec<Option<CameraFallback>>,
    text: Option<(Arc<Target>, TextTeacher, Band)>,
}

impl Links {
    /// Loads the manifests of the host's models and checks them against the host.
    pub async fn connect(config: &Config) -> Result<Links, AgentError> {
        let Some(settings) = &config.fallback else {
            return Ok(Links {
                host: None,
                cameras: config.cameras.iter().map(|_| None).collect(),
                text: None,
            });
        };
        let host = Arc::new(Host::new(settings, tokio::runtime::Handle::current())?);
        let (cameras, text) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || load(&config))
                .await
                .map_err(|e| AgentError::Thread(std::io::Error::other(e)))??
        };
        let targets = cameras
            .iter()
            .flatten()
            .map(|(target, _, _)| target)
            .chain(text.iter().map(|(target, _, _)| target));
        for target in targets {
            match host.check(target).await {
                Ok(()) => tracing::info!(
                    "fallback: host model `{}` at {} fits {}",
                    target.name,
                    host.url(),
                    target.manifest.display()
                ),
                Err(e) if e.is_mismatch() => return Err(e.into()),
                Err(e) => tracing::warn!(
                    "fallback: {}; the edge answers alone until the host can be reached",
                    describe(&e)
                ),
            }
        }
        let cameras = cameras
            .into_iter()
            .zip(&config.cameras)
            .map(|(link, camera)| {
                link.map(|(target, teacher, band)| {
                    CameraFallback::new(&camera.name, host.clone(), target, teacher, band)
                })
            })
            .collect();
        Ok(Links {
            host: Some(host),
            cameras,
            text,
        })
    }

    /// Takes camera `index`'s link.
    pub fn camera(&mut self, index: usize) -> Option<CameraFallback> {
        self.cameras.get_mut(index).and_then(Option::take)
    }

    /// Takes the text classifier's link; its answers go out through `publisher`.
    pub fn text(&mut self, publisher: &Handle, topics: &Topics) -> Option<TextFallback> {
        let host = self.host.clone()?;
        self.text.take().map(|(target, teacher, band)| {
            TextFallback::new(
                host,
                target,
                teacher,
                band,
                publisher.clone(),
                topics.text_out(),
            )
        })
    }

    /// The host's counters, when there is a host.
    pub fn stats(&self) -> Option<Arc<HostStats>> {
        self.host.as_ref().map(|h| h.stats().clone())
    }
}

type CameraLink = (Arc<Target>, VisionTeacher, Band);
type TextLink = (Arc<Target>, TextTeacher, Band);

/// Reads the manifests (and the text tokenizer) of the host's models.
fn load(config: &Config) -> Result<(Vec<Option<CameraLink>>, Option<TextLink>), FallbackError> {
    let mut cameras = Vec::with_capacity(config.cameras.len());
    for camera in &config.cameras {
        cameras.push(match &camera.fallback {
            Some(escalation) => {
                let teacher = VisionTeacher::load(escalation)?;
                let target = Target::new(escalation, teacher.name(), teacher.signature());
                Some((Arc::new(target), teacher, escalation.band))
            }
            None => None,
        });
    }
    let text = match config.text.as_ref().and_then(|t| t.fallback.as_ref()) {
        Some(escalation) => {
            let teacher = TextTeacher::load(escalation)?;
            let target = Target::new(escalation, teacher.name(), teacher.signature());
            Some((Arc::new(target), teacher, escalation.band))
        }
        None => None,
    };
    Ok((cameras, text))
}
