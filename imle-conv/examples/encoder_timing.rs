//! Quick timing loop of the Warcraft encoder and the L2X selector (same workloads as
//! `benches/layers.rs`), for profiling: `cargo run -p imle-conv --release --example
//! encoder_timing -- [iters] [which]` with `which` one of `fb` (default: forward +
//! backward, input gradient included), `fbd` (the stem on data: no input gradient),
//! `fwd`, `eval`, `l2x` (forward + backward, input gradient included), `l2xd` (first
//! layer on data), `l2xf` (forward), `mlp` (the Figure 4 VAE's two MLPs, batch 100,
//! forward + backward). Prints each iteration's time.
#![allow(clippy::type_complexity)]

use dfdx::prelude::*;
#[path = "../benches/common/models.rs"]
mod models;
use models::{DataEncoder, DataSelector, Encoder, Selector, VaeMlp};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iters: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let which = args.get(2).map(String::as_str).unwrap_or("fb");
    let dev = Cpu::seed_from_u64(0);
    if std::env::var_os("DFDX_CACHE").is_some() {
        dev.enable_cache();
    }
    let mut enc = dev.build_module::<Encoder, f32>();
    let mut data_enc = dev.build_module::<DataEncoder, f32>();
    let sel = dev.build_module::<Selector, f32>();
    let data_sel = dev.build_module::<DataSelector, f32>();
    let x: Tensor<(usize, Const<3>, usize, usize), f32, _> =
        dev.sample_normal_like(&(70, Const, 96, 96));
    let e: Tensor<(usize, Const<200>, usize), f32, _> = dev.sample_normal_like(&(40, Const, 350));
    let mlp = dev.build_module::<VaeMlp, f32>();
    let v: Tensor<(usize, Const<784>), f32, _> = dev.sample_uniform_like(&(100, Const));
    let mut grads = enc.alloc_grads();
    let mut data_grads = data_enc.alloc_grads();
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        let c = cpu_time();
        match which {
            "fwd" => {
                let y = enc.forward_mut(x.trace(grads.clone()));
                let _c: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
            }
            "eval" => {
                let _c = enc
                    .forward(x.clone())
                    .mean::<(usize, usize, usize), Axis<1>>();
            }
            "l2x" => {
                let _g = sel.forward(e.leaky_trace()).sum::<Rank0, _>().backward();
            }
            "l2xd" => {
                let _g = data_sel
                    .forward(e.leaky_trace())
                    .sum::<Rank0, _>()
                    .backward();
            }
            "fbd" => {
                let y = data_enc.forward_mut(x.trace(data_grads.clone()));
                let cost: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
                let _g2 = cost.sum::<Rank0, _>().backward();
                data_enc.zero_grads(&mut data_grads);
            }
            "mlp" => {
                let _g = mlp.forward(v.leaky_trace()).sum::<Rank0, _>().backward();
            }
            "l2xf" => {
                let _y = sel.forward(e.clone());
            }
            _ => {
                let y = enc.forward_mut(x.trace(grads.clone()));
                let cost: Tensor<(usize, usize, usize), f32, _, _> = y.mean::<_, Axis<1>>();
                let _g2 = cost.sum::<Rank0, _>().backward();
                enc.zero_grads(&mut grads);
            }
        }
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_time() - c);
    }
    cpu.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut s = times.clone();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    println!("{rss}");
    println!(
        "{which}: median {:.4} s, min {:.4} s, median CPU time {:.4} s, all {:?}",
        s[s.len() / 2],
        s[0],
        cpu[cpu.len() / 2],
        times
            .iter()
            .map(|t| (t * 1e3).round() / 1e3)
            .collect::<Vec<_>>()
    );
}

/// CPU time of the process (all threads), in seconds.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
