//! Where tract spends its time on a model: every node of the optimised plan timed over several
//! runs on one thread, summed per tract operator and per ONNX node.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimpleState, eval};

use crate::onnx::graph::Graph;
use crate::onnx::inspect::{
    InputShape, InspectError, fix_quirks, fixed_shapes, node_name, onnx_index, onnx_node,
};

/// Time of one operator or node, averaged over the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    /// The tract operator, or the ONNX node's name.
    pub name: String,
    /// Mean time per run.
    pub time: Duration,
}

/// tract's time on a model at fixed input shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Median time of a whole run.
    pub run: Duration,
    /// Time per tract operator type, most first.
    pub by_op: Vec<Timed>,
    /// Time per ONNX node (tract's fused nodes counted to the node they come from), most first.
    pub nodes: Vec<Timed>,
}

/// Times `runs` runs (after one warm-up) of `graph` in tract on zeros of the `given` shapes.
pub fn profile(graph: &Graph, given: &[InputShape], runs: usize) -> Result<Profile, InspectError> {
    let tract = |stage: &str| {
        let stage = stage.to_owned();
        move |e: TractError| InspectError::Tract {
            stage,
            reason: format!("{e:#}"),
        }
    };
    let inputs = fixed_shapes(graph, given)?;
    let mut model = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_proto_model(&fix_quirks(&graph.proto))
        .map_err(tract("load the graph"))?;
    for (i, (_, dims)) in inputs.iter().enumerate() {
        model = model
            .with_input_fact(i, f32::fact(dims).into())
            .map_err(tract("fix input shapes"))?;
    }
    let plan = edgemass::model::short_softmax::into_optimized(model)
        .map_err(tract("optimise"))?
        .into_runnable()
        .map_err(tract("plan"))?;
    let values: TVec<TValue> = inputs
        .iter()
        .map(|(_, dims)| Tensor::zero::<f32>(dims).map(TValue::from))
        .collect::<TractResult<_>>()
        .map_err(tract("build inputs"))?;
    let mut state = SimpleState::new(&plan).map_err(tract("start a run"))?;
    let mut per_node: HashMap<usize, Duration> = HashMap::new();
    let mut whole = Vec::with_capacity(runs);
    for run in 0..=runs.max(1) {
        let mut times: Vec<(usize, Duration)> = Vec::with_capacity(plan.model().nodes.len());
        let started = Instant::now();
        state
            .run_plan_with_eval(values.clone(), |ctx, op_state, node, input| {
                let start = Instant::now();
                let out = eval(ctx, op_state, node, input);
                times.push((node.id, start.elapsed()));
                out
            })
            .map_err(tract("run"))?;
        if run == 0 {
            continue;
        }
        whole.push(started.elapsed());
        for (id, t) in times {
            *per_node.entry(id).or_default() += t;
        }
    }
    whole.sort();
    let runs = whole.len() as u32;
    let onnx_nodes = &graph.graph().node;
    let index = onnx_index(graph);
    let mut by_op: HashMap<String, Duration> = HashMap::new();
    let mut by_node: HashMap<String, Duration> = HashMap::new();
    for (id, total) in per_node {
        let node = plan.model().node(id);
        let time = total / runs;
        *by_op.entry(node.op().name().into_owned()).or_default() += time;
        let name = match onnx_node(&index, &node.name) {
            Some(i) => node_name(&onnx_nodes[i], i),
            None => node.name.clone(),
        };
        *by_node.entry(name).or_default() += time;
    }
    Ok(Profile {
        run: whole[whole.len() / 2],
        by_op: sorted(by_op),
        nodes: sorted(by_node),
    })
}

fn sorted(map: HashMap<String, Duration>) -> Vec<Timed> {
    let mut v: Vec<Timed> = map
        .into_iter()
        .map(|(name, time)| Timed { name, time })
        .collect();
    v.sort_by(|a, b| b.time.cmp(&a.time).then(a.name.cmp(&b.name)));
    v
}

impl Profile {
    /// The profile as text, with the `top` nodes.
    pub fn to_text(&self, top: usize) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total: f64 = self.by_op.iter().map(|t| ms(t.time)).sum();
        let mut out = format!(
            "tract       {:.2} ms per run (median, one thread; {:.2} ms in nodes)\ntime by tract operator\n",
            ms(self.run),
            total
        );
        for t in &self.by_op {
            out.push_str(&format!(
                "  {:<24} {:>9.2} ms {:>5.1} %\n",
                t.name,
                ms(t.time),
                100.0 * ms(t.time) / total.max(1e-9)
            ));
        }
        let nodes = &self.nodes[..top.min(self.nodes.len())];
        out.push_str(&format!("top {} nodes by time\n", nodes.len()));
        for t in nodes {
            out.push_str(&format!("  {:>9.2} ms  {}\n", ms(t.time), t.name));
        }
        out
    }
}
