//! Runs the nodes of a graph with as much parallelism as their dependencies allow.
//!
//! A fixed set of worker threads (`jobs`) takes nodes whose inputs are all done from a ready
//! queue. RUN steps mostly wait on a child process, so threads (not async tasks) are the right
//! unit; CPU-heavy work inside a step (compressing a layer) uses its own threads.
//!
//! On the first failure no new node starts; nodes already running are told to stop through
//! the shared [`Cancel`] token (cancelling it kills every sandbox started with it) and finish;
//! every failure is collected and reported, not just the first.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::graph::{Graph, NodeId};

/// The cancellation token shared with running steps: the runner's, so cancelling it also kills
/// every sandbox started with it.
pub use strata_runner::Cancel;

/// Every node's result, indexed by node id (`None` for nodes the roots did not need).
pub type NodeResults<T> = Vec<Option<Arc<T>>>;

struct State<T, E> {
    ready: VecDeque<NodeId>,
    results: Vec<Option<Arc<T>>>,
    waiting_on: Vec<usize>,
    running: usize,
    remaining: usize,
    failures: Vec<(NodeId, E)>,
}

/// Runs `run(node, inputs)` for every node `roots` need, inputs first. `inputs` are the
/// results of the node's distinct inputs, in the order `Op::inputs` lists them. Returns every
/// node's result (None for nodes not needed), or every failure.
pub fn run_graph<T, E, F>(
    graph: &Graph,
    roots: &[NodeId],
    jobs: usize,
    cancel: &Cancel,
    run: F,
) -> Result<NodeResults<T>, Vec<(NodeId, E)>>
where
    T: Send + Sync,
    E: Send,
    F: Fn(NodeId, &[Arc<T>]) -> Result<T, E> + Sync,
{
    let needed = graph.reachable(roots);
    let n = graph.nodes.len();
    let mut waiting_on = vec![0usize; n];
    let mut dependents: Vec<Vec<NodeId>> = vec![Vec::new(); n];
    for &id in &needed {
        let mut inputs = graph.node(id).op.inputs();
        inputs.sort();
        inputs.dedup();
        waiting_on[id.0] = inputs.len();
        for i in inputs {
            dependents[i.0].push(id);
        }
    }
    let ready: VecDeque<NodeId> = needed.iter().copied().filter(|id| waiting_on[id.0] == 0).collect();
    let state = Mutex::new(State {
        ready,
        results: (0..n).map(|_| None).collect(),
        waiting_on,
        running: 0,
        remaining: needed.len(),
        failures: Vec::new(),
    });
    let wake = Condvar::new();

    let worker = || {
        loop {
            let (id, inputs) = {
                let Ok(mut s) = state.lock() else { return };
                loop {
                    let stop = !s.failures.is_empty() || cancel.is_cancelled();
                    if s.remaining == 0 || (stop && s.running == 0) || (stop && s.ready.is_empty()) {
                        wake.notify_all();
                        return;
                    }
                    if !stop && let Some(id) = s.ready.pop_front() {
                        s.running += 1;
                        let ids = graph.node(id).op.inputs();
                        let inputs: Vec<Arc<T>> = ids.iter().filter_map(|i| s.results[i.0].clone()).collect();
                        break (id, inputs);
                    }
                    s = match wake.wait(s) {
                        Ok(s) => s,
                        Err(_) => return,
                    };
                }
            };
            let outcome = run(id, &inputs);
            let Ok(mut s) = state.lock() else { return };
            s.running -= 1;
            s.remaining -= 1;
            match outcome {
                Ok(v) => {
                    s.results[id.0] = Some(Arc::new(v));
                    for &d in &dependents[id.0] {
                        s.waiting_on[d.0] -= 1;
                        if s.waiting_on[d.0] == 0 {
                            s.ready.push_back(d);
                        }
                    }
                }
                Err(e) => {
                    s.failures.push((id, e));
                    cancel.cancel();
                }
            }
            wake.notify_all();
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(worker);
        }
    });
    let s = match state.into_inner() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    if s.failures.is_empty() && !cancel.is_cancelled() { Ok(s.results) } else { Err(s.failures) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{ExecOp, FileOp, Node, Op};
    use std::time::{Duration, Instant};

    fn exec(root: NodeId) -> Op {
        Op::Exec(ExecOp {
            root,
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            network: Default::default(),
            security: Default::default(),
            mounts: vec![],
            platform: None,
        })
    }

    /// base -> a, b, c (independent) -> join (file op reading a, b, c via copies is modelled by
    /// chaining: join's root is a, and it also depends on b and c through copies).
    fn diamond() -> (Graph, NodeId) {
        use crate::graph::{CopyAction, FileAction};
        let mut g = Graph::new();
        let base = g.add(Node::new(Op::Scratch, "base"));
        let a = g.add(Node::new(exec(base), "a"));
        let b = g.add(Node::new(exec(base), "b"));
        let c = g.add(Node::new(exec(base), "c"));
        let _unused = g.add(Node::new(exec(base), "unused"));
        let copy = |src| {
            FileAction::Copy(CopyAction {
                source: src,
                src_paths: vec![],
                dest: "/".into(),
                chown: None,
                chmod: None,
                allow_wildcard: false,
                allow_empty_wildcard: false,
                unpack_archives: false,
                parents: false,
                include: vec![],
                required_paths: vec![],
                exclude: vec![],
                link: false,
                include_filter: None,
                exclude_filter: None,
            })
        };
        let join = g.add(Node::new(Op::File(FileOp { root: a, actions: vec![copy(b), copy(c)] }), "join"));
        (g, join)
    }

    #[test]
    fn independent_nodes_run_concurrently_and_unneeded_ones_not_at_all() {
        let (g, join) = diamond();
        let ran = Mutex::new(Vec::new());
        // a, b and c each wait until all three are running at once: this only completes if the
        // scheduler really runs them concurrently (the timeout only bounds a broken scheduler).
        let arrived = (Mutex::new(0usize), Condvar::new());
        let results = run_graph(&g, &[join], 4, &Cancel::default(), |id, inputs| {
            let name = g.node(id).name.clone();
            ran.lock().unwrap().push(name.clone());
            if matches!(name.as_str(), "a" | "b" | "c") {
                let (count, cv) = &arrived;
                let mut n = count.lock().unwrap();
                *n += 1;
                cv.notify_all();
                let (n, timeout) = cv.wait_timeout_while(n, Duration::from_secs(10), |n| *n < 3).unwrap();
                if timeout.timed_out() {
                    return Err(format!("{name}: only {} of a, b, c ran at the same time", *n));
                }
            }
            Ok::<usize, String>(inputs.iter().map(|v| **v).sum::<usize>() + 1)
        })
        .unwrap();
        let ran = ran.into_inner().unwrap();
        assert!(!ran.contains(&"unused".to_string()));
        assert_eq!(ran.first().map(String::as_str), Some("base"));
        assert_eq!(ran.last().map(String::as_str), Some("join"));
        // join sees a, b and c (each 2): 2+2+2+1
        assert_eq!(*results[join.0].as_ref().unwrap().as_ref(), 7);
    }

    #[test]
    fn a_failure_stops_new_work_cancels_and_reports_every_failure() {
        let (g, join) = diamond();
        let cancel = Cancel::default();
        let ran = Mutex::new(Vec::new());
        // a, b and c start together before any fails, so all three are running when a and b
        // fail; c must then see the cancellation.
        let arrived = (Mutex::new(0usize), Condvar::new());
        let err = run_graph(&g, &[join], 4, &cancel, |id, _| {
            let name = g.node(id).name.clone();
            ran.lock().unwrap().push(name.clone());
            if matches!(name.as_str(), "a" | "b" | "c") {
                let (count, cv) = &arrived;
                let mut n = count.lock().unwrap();
                *n += 1;
                cv.notify_all();
                drop(cv.wait_timeout_while(n, Duration::from_secs(10), |n| *n < 3).unwrap());
            }
            match name.as_str() {
                "a" | "b" => Err(format!("{name} failed")),
                "c" => {
                    // A long step notices the cancellation and stops early.
                    let t = Instant::now();
                    while !cancel.is_cancelled() && t.elapsed() < Duration::from_secs(5) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err("c cancelled".to_string())
                }
                _ => Ok(()),
            }
        })
        .unwrap_err();
        let mut msgs: Vec<String> = err.into_iter().map(|(_, e)| e).collect();
        msgs.sort();
        assert_eq!(msgs, ["a failed", "b failed", "c cancelled"]);
        assert!(!ran.into_inner().unwrap().contains(&"join".to_string()));
    }

    #[test]
    fn one_job_runs_one_at_a_time() {
        let (g, join) = diamond();
        let running = Mutex::new(0usize);
        let max = Mutex::new(0usize);
        run_graph(&g, &[join], 1, &Cancel::default(), |_, _| {
            let now = {
                let mut r = running.lock().unwrap();
                *r += 1;
                *r
            };
            let mut m = max.lock().unwrap();
            *m = (*m).max(now);
            drop(m);
            std::thread::sleep(Duration::from_millis(10));
            *running.lock().unwrap() -= 1;
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(*max.lock().unwrap(), 1);
    }
}
