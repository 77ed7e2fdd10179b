//! tract plans of a text model at fixed shapes. A plan with symbolic batch and sequence sizes
//! runs about twice as slow in tract 0.23 as one built for the shape at hand: its element-wise
//! ops (residual adds, layer-norm arithmetic, the attention mask) stay generic instead of fused
//! kernels (MiniLM student at 1 × 64 tokens: 3.26 ms against 1.53 ms). So a batch runs on a plan
//! built for its size and its length rounded up to [`LENGTH_STEP`] tokens, the rows padded with
//! masked-out tokens; the [`KEPT`] most recently used plans are kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tract_onnx::prelude::*;

use crate::model::ModelError;

/// Lengths are rounded up to a multiple of this.
pub const LENGTH_STEP: usize = 16;

/// Plans kept at once (each holds its own packed weights).
pub const KEPT: usize = 8;

/// The padded length of a batch whose longest text has `len` tokens: the next multiple of
/// [`LENGTH_STEP`], but never past `max_length` unless `len` already is.
pub fn padded_length(len: usize, max_length: usize) -> usize {
    len.div_ceil(LENGTH_STEP)
        .max(1)
        .saturating_mul(LENGTH_STEP)
        .min(len.max(max_length))
}

/// Plans of one imported model by (batch, length), built on first use.
pub struct Plans {
    model: InferenceModel,
    path: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    clock: u64,
    plans: Vec<Kept>,
}

struct Kept {
    shape: (usize, usize),
    plan: Arc<TypedRunnableModel>,
    used: u64,
}

impl Plans {
    /// Plans of `model` (its outputs already chosen), read from `path`.
    pub fn new(model: InferenceModel, path: &Path) -> Plans {
        Plans {
            model,
            path: path.to_owned(),
            cache: Mutex::default(),
        }
    }

    /// The plan for `batch` rows of `len` tokens.
    pub fn get(&self, batch: usize, len: usize) -> Result<Arc<TypedRunnableModel>, ModelError> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.clock += 1;
        let now = cache.clock;
        if let Some(kept) = cache.plans.iter_mut().find(|k| k.shape == (batch, len)) {
            kept.used = now;
            return Ok(kept.plan.clone());
        }
        let plan = self.build(batch, len)?;
        if cache.plans.len() >= KEPT
            && let Some(oldest) = (0..cache.plans.len()).min_by_key(|&i| cache.plans[i].used)
        {
            cache.plans.swap_remove(oldest);
        }
        cache.plans.push(Kept {
            shape: (batch, len),
            plan: plan.clone(),
            used: now,
        });
        Ok(plan)
    }

    /// How many plans are kept now.
    pub fn kept(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .plans
            .len()
    }

    fn build(&self, batch: usize, len: usize) -> Result<Arc<TypedRunnableModel>, ModelError> {
        let mut model = self.model.clone();
        for i in 0..model.inputs.len() {
            model = model
                .with_input_fact(i, i64::fact([batch, len]).into())
                .map_err(ModelError::tract(&self.path, "fix the input shapes of"))?;
        }
        crate::model::optimise(model, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph that casts its int64 `[batch, sequence]` input to f32.
    fn passthrough() -> InferenceModel {
        let mut model = InferenceModel::default();
        let x = model
            .add_source("ids", InferenceFact::dt(i64::datum_type()))
            .unwrap();
        let y = model
            .wire_node(
                "cast",
                tract_onnx::tract_hir::ops::cast::cast(f32::datum_type()),
                &[x],
            )
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    #[test]
    fn plans_are_built_for_their_shape_and_the_least_recently_used_goes_first() {
        let plans = Plans::new(passthrough(), Path::new("cast.onnx"));
        let first = plans.get(1, 16).unwrap();
        let ids = Tensor::from_shape(&[1, 16], &[3i64; 16]).unwrap();
        let out = first.run(tvec![ids.into()]).unwrap();
        assert_eq!(out[0].shape(), [1, 16]);
        assert_eq!(out[0].to_plain_array_view::<f32>().unwrap()[[0, 5]], 3.0);
        assert!(Arc::ptr_eq(&first, &plans.get(1, 16).unwrap()));
        for len in 1..KEPT {
            plans.get(2, len * LENGTH_STEP).unwrap();
            plans.get(1, 16).unwrap();
        }
        assert_eq!(plans.kept(), KEPT);
        plans.get(4, 64).unwrap();
        assert_eq!(plans.kept(), KEPT);
        assert!(
            Arc::ptr_eq(&first, &plans.get(1, 16).unwrap()),
            "the plan used most often was evicted"
        );
    }

    #[test]
    fn lengths_round_up_to_the_step_but_not_past_the_longest_allowed() {
        assert_eq!(padded_length(1, 64), 16);
        assert_eq!(padded_length(16, 64), 16);
        assert_eq!(padded_length(17, 64), 32);
        assert_eq!(padded_length(64, 64), 64);
        assert_eq!(padded_length(90, 100), 96);
        assert_eq!(padded_length(97, 100), 100);
        assert_eq!(padded_length(0, 64), 16);
    }
}
