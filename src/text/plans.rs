//! tract plans of a text model. A plan with symbolic batch and sequence sizes runs up to twice
//! as slow in tract 0.23 as one built for the shape at hand: its element-wise ops (residual
//! adds, layer-norm arithmetic, the attention mask) stay generic instead of fused kernels
//! (MiniLM student at 1 × 64 tokens: 3.11 ms against 1.64 ms; the teacher 16.17 against 10.77).
//! So a single text, the latency path, runs on a plan built for its length rounded up to
//! [`LENGTH_STEP`] tokens, padded with masked-out tokens; building one costs 30–200 ms once, and
//! the [`KEPT`] most recently used are kept. Batches of several texts, the throughput path, share
//! the symbolic plan, so their many shapes neither rebuild plans nor pile up packed weights.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tract_onnx::prelude::*;

use crate::model::ModelError;

/// Lengths are rounded up to a multiple of this.
pub const LENGTH_STEP: usize = 16;

/// Fixed-length plans kept at once (each holds its own packed weights).
pub const KEPT: usize = 8;

/// The padded length of a text of `len` tokens: the next multiple of [`LENGTH_STEP`], but never
/// past `max_length` unless `len` already is.
pub fn padded_length(len: usize, max_length: usize) -> usize {
    len.div_ceil(LENGTH_STEP)
        .max(1)
        .saturating_mul(LENGTH_STEP)
        .min(len.max(max_length))
}

/// The optimised plan of `model` (read from `path`, its outputs chosen) for `batch` rows of
/// `len` tokens on every input.
pub fn fixed(
    mut model: InferenceModel,
    path: &Path,
    batch: usize,
    len: usize,
) -> Result<Arc<TypedRunnableModel>, ModelError> {
    for i in 0..model.inputs.len() {
        model = model
            .with_input_fact(i, i64::fact([batch, len]).into())
            .map_err(ModelError::tract(path, "fix the input shapes of"))?;
    }
    crate::model::optimise(model, path)
}

/// The symbolic plan of one imported model, and its single-text plans by length.
pub struct Plans {
    model: InferenceModel,
    path: PathBuf,
    max_length: usize,
    any: Arc<TypedRunnableModel>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    clock: u64,
    plans: Vec<Kept>,
}

struct Kept {
    len: usize,
    plan: Arc<TypedRunnableModel>,
    used: u64,
}

impl Plans {
    /// Builds the symbolic plan of `model` (its outputs already chosen), read from `path`, whose
    /// texts have at most `max_length` tokens.
    pub fn new(model: InferenceModel, path: &Path, max_length: usize) -> Result<Plans, ModelError> {
        Ok(Plans {
            any: crate::model::optimise(model.clone(), path)?,
            model,
            path: path.to_owned(),
            max_length,
            cache: Mutex::default(),
        })
    }

    /// The plan for `batch` rows whose longest has `len` tokens, and the length the rows must be
    /// padded to for it.
    pub fn get(
        &self,
        batch: usize,
        len: usize,
    ) -> Result<(Arc<TypedRunnableModel>, usize), ModelError> {
        if batch != 1 {
            return Ok((self.any.clone(), len));
        }
        let len = padded_length(len, self.max_length);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.clock += 1;
        let now = cache.clock;
        if let Some(kept) = cache.plans.iter_mut().find(|k| k.len == len) {
            kept.used = now;
            return Ok((kept.plan.clone(), len));
        }
        let plan = fixed(self.model.clone(), &self.path, 1, len)?;
        if cache.plans.len() >= KEPT
            && let Some(oldest) = (0..cache.plans.len()).min_by_key(|&i| cache.plans[i].used)
        {
            cache.plans.swap_remove(oldest);
        }
        cache.plans.push(Kept {
            len,
            plan: plan.clone(),
            used: now,
        });
        Ok((plan, len))
    }

    /// How many single-text plans are kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .plans
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph that casts its int64 `[batch, sequence]` input to f32.
    fn passthrough() -> InferenceModel {
        let mut model = InferenceModel::default();
        let dims = [model.symbols.sym("batch"), model.symbols.sym("sequence")];
        let fact = InferenceFact::dt_shape(i64::datum_type(), dims.map(TDim::from));
        let x = model.add_source("ids", fact).unwrap();
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
    fn single_texts_get_plans_for_their_padded_length_and_the_least_recently_used_goes_first() {
        let plans = Plans::new(passthrough(), Path::new("cast.onnx"), 512).unwrap();
        let (first, len) = plans.get(1, 5).unwrap();
        assert_eq!(len, 16);
        let ids = Tensor::from_shape(&[1, 16], &[3i64; 16]).unwrap();
        let out = first.run(tvec![ids.into()]).unwrap();
        assert_eq!(out[0].shape(), [1, 16]);
        assert_eq!(out[0].to_plain_array_view::<f32>().unwrap()[[0, 5]], 3.0);
        assert!(Arc::ptr_eq(&first, &plans.get(1, 16).unwrap().0));
        for step in 2..=KEPT {
            plans.get(1, step * LENGTH_STEP).unwrap();
            plans.get(1, 16).unwrap();
        }
        assert_eq!(plans.kept(), KEPT);
        plans.get(1, 500).unwrap();
        assert_eq!(plans.kept(), KEPT);
        assert!(
            Arc::ptr_eq(&first, &plans.get(1, 16).unwrap().0),
            "the plan used most often was evicted"
        );
        let (any, len) = plans.get(3, 21).unwrap();
        assert_eq!(len, 21);
        let ids = Tensor::from_shape(&[3, 21], &[1i64; 63]).unwrap();
        assert_eq!(any.run(tvec![ids.into()]).unwrap()[0].shape(), [3, 21]);
        assert_eq!(plans.kept(), KEPT);
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
