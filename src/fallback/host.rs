//! One fallback host shared by every source: the client, the bound on requests out at once, the
//! rate budget and the circuit breaker. [`Host::try_admit`] decides at once, from any thread,
//! whether a request may go; admitted requests run as tasks on the async runtime, so the
//! pipeline never waits for the host.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::breaker::{Breaker, State, Ticket};
use super::budget::Budget;
use super::check::{Signature, fits};
use super::client::HostClient;
use super::protocol::{InferRequest, InferResponse};
use super::stats::HostStats;
use super::{FallbackError, describe};
use crate::config::{EscalationConfig, FallbackConfig};

/// A model on the host and what it must look like.
#[derive(Debug)]
pub struct Target {
    /// Its name on the host.
    pub name: String,
    /// The version asked for; `None` lets the host choose.
    pub version: Option<String>,
    /// The manifest it is checked against (for messages).
    pub manifest: PathBuf,
    /// What the agent sends and reads.
    pub signature: Signature,
    checked: AtomicBool,
}

impl Target {
    /// The model a source's `fallback` table names (`default_name` when it gives no name), not
    /// yet checked against the host.
    pub fn new(config: &EscalationConfig, default_name: &str, signature: Signature) -> Target {
        Target {
            name: config
                .name
                .clone()
                .unwrap_or_else(|| default_name.to_owned()),
            version: config.version.clone(),
            manifest: config.model.clone(),
            signature,
            checked: AtomicBool::new(false),
        }
    }
}

/// Permission for one request: a place among those in flight and a breaker ticket.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    ticket: Ticket,
}

/// The host and what guards it.
pub struct Host {
    client: HostClient,
    breaker: Mutex<Breaker>,
    budget: Mutex<Budget>,
    in_flight: Arc<Semaphore>,
    stats: Arc<HostStats>,
    runtime: tokio::runtime::Handle,
}

impl Host {
    /// Sets up the client; admitted requests will run on `runtime`.
    pub fn new(
        config: &FallbackConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Host, FallbackError> {
        Ok(Host {
            client: HostClient::new(config)?,
            breaker: Mutex::new(Breaker::new(config.breaker)),
            budget: Mutex::new(Budget::new(config.rate_per_s, config.burst, Instant::now())),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            stats: Arc::new(HostStats::default()),
            runtime,
        })
    }

    /// The host's base URL.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// Live counters.
    pub fn stats(&self) -> &Arc<HostStats> {
        &self.stats
    }

    /// The runtime admitted requests run on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Lets one request go, or refuses it at once (counted by reason): too many out, breaker
    /// open, rate budget spent.
    pub fn try_admit(&self) -> Option<Admission> {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let now = Instant::now();
        let mut breaker = self.breaker();
        let Some(ticket) = breaker.try_acquire(now) else {
            self.stats.refused_open.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.show(&breaker, now);
        if !lock(&self.budget).try_take(now) {
            breaker.cancel(ticket);
            self.stats.refused_budget.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Admission {
            _permit: permit,
            ticket,
        })
    }

    /// Checks that the host is ready and that `target`'s metadata fits its signature.
    pub async fn check(&self, target: &Target) -> Result<(), FallbackError> {
        self.client.ready().await?;
        let metadata = self
            .client
            .metadata(&target.name, target.version.as_deref())
            .await?;
        fits(&target.signature, &metadata).map_err(|reason| FallbackError::Mismatch {
            model: target.name.clone(),
            manifest: target.manifest.clone(),
            reason,
        })?;
        target.checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Sends one admitted request and reads its answer: `build` makes the request (and what
    /// `read` will need besides the answer) and `read` interprets the answer, both on the
    /// blocking pool; the target is checked first if that has not been done yet. The outcome
    /// goes to the breaker and the counters: an answer `read` cannot use counts as a failure.
    pub async fn ask<C: Send + 'static, T: Send + 'static>(
        &self,
        admission: Admission,
        target: &Target,
        build: impl FnOnce() -> Result<(InferRequest, C), FallbackError> + Send + 'static,
        read: impl FnOnce(C, InferResponse) -> Result<T, FallbackError> + Send + 'static,
    ) -> Result<T, FallbackError> {
        let (request, context) = match blocking(target, build).await {
            Ok(request) => request,
            Err(e) => {
                self.breaker().cancel(admission.ticket);
                tracing::warn!("fallback: cannot build a request: {}", describe(&e));
                return Err(e);
            }
        };
        let started = Instant::now();
        self.stats.escalations.fetch_add(1, Ordering::Relaxed);
        let result = async {
            if !target.checked.load(Ordering::Relaxed) {
                self.check(target).await?;
            }
            let response = self
                .client
                .infer(&target.name, target.version.as_deref(), &request)
                .await?;
            blocking(target, move || read(context, response)).await
        }
        .await;
        self.record(admission.ticket, &result, started);
        result
    }

    /// Counts an outcome and feeds it to the breaker, logging when the breaker opens or closes.
    fn record<T>(&self, ticket: Ticket, result: &Result<T, FallbackError>, started: Instant) {
        let now = Instant::now();
        let (opened, closed) = {
            let mut breaker = self.breaker();
            let was = breaker.state(now);
            let before = breaker.opened();
            breaker.record(ticket, result.is_ok(), now);
            self.show(&breaker, now);
            let closed = was != State::Closed && breaker.state(now) == State::Closed;
            (breaker.opened() > before, closed)
        };
        let e = match result {
            Ok(_) => {
                self.stats.answers.fetch_add(1, Ordering::Relaxed);
                self.stats.latencies.record(now - started);
                if closed {
                    tracing::info!("fallback: the host at {} answers again", self.url());
                }
                return;
            }
            Err(e) => e,
        };
        let counter = match e {
            FallbackError::Timeout { .. } => &self.stats.timeouts,
            _ => &self.stats.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let message = describe(e);
        if opened {
            tracing::warn!(
                "fallback: {message}; not asking the host for a while, edge results stand unverified"
            );
        } else if e.is_mismatch() {
            tracing::error!("fallback: {message}");
        } else {
            tracing::debug!("fallback: {message}");
        }
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        lock(&self.breaker)
    }

    /// Publishes the breaker's state to the counters.
    fn show(&self, breaker: &Breaker, now: Instant) {
        self.stats
            .breaker
            .store(breaker.state(now).level(), Ordering::Relaxed);
        self.stats
            .breaker_opened
            .store(breaker.opened(), Ordering::Relaxed);
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    target: &Target,
    f: impl FnOnce() -> Result<T, FallbackError> + Send + 'static,
) -> Result<T, FallbackError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(FallbackError::Answer {
            model: target.name.clone(),
            reason: "could not be handled (the task failed)".to_owned(),
        })
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
