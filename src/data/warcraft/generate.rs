//! A generator of Warcraft-like terrain maps (`imle-paper data generate warcraft --k 12
//! --seed S`), written in exactly the data set's `.npy` layout so that one loader serves
//! both.
//!
//! **Terrain.** Each map is a Voronoi field of a handful of region seeds (`regions`,
//! about K/2), each seed of one of five terrain types drawn with the shares of
//! [`TYPE_SHARES`]; a cell takes the type of the seed nearest to it under a per-cell
//! jittered distance (ragged borders), and a share `isolated` of the cells then takes a
//! random type (lone trees and rocks). The types' costs are the data set's, [`COSTS`].
//!
//! **Images.** A cell is an 8 x 8 px tile whose *pattern* tells its type: fine grain,
//! horizontal stripes of period 4, vertical stripes of period 2, a 2 x 2 checker, 2 x 2
//! dots on a 4 x 4 lattice, each with a random phase per tile. Its *colours* do not:
//! every map draws, per type, a random background colour and a foreground that differs
//! from it in brightness only (by 50-100 levels, brighter or darker), then each tile gets a
//! brightness factor in [0.85, 1.15] and every pixel Gaussian noise (σ = 6). A classifier
//! of a tile's mean colour therefore does poorly while a texture feature separates the
//! types (both measured in `tests/warcraft.rs`).
//!
//! **Labels.** The optimal top-left to bottom-right path by our Dijkstra
//! ([`imle::solver::grid_shortest_path`]: 8-neighbourhood, vertex costs, the start cell
//! counted, ties keep the first predecessor found); the record counts the maps with
//! several optimal paths.
//!
//! Deterministic per seed: map `i` of split `s` draws from its own ChaCha8 stream
//! `derive_seed(seed, "warcraft/<s>", i)`, so splits are separate streams and the maps can
//! be drawn in parallel.

use super::{Split, CELL_PX};
use imle::solver::{grid_shortest_path, Neighbourhood};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The terrain costs of the data set, by type.
pub const COSTS: [f32; 5] = [0.8, 1.2, 5.3, 7.7, 9.2];
/// The share of region seeds of each type.
pub const TYPE_SHARES: [f64; 5] = [0.25, 0.2, 0.2, 0.2, 0.15];
/// The tile patterns, by type.
pub const PATTERNS: [&str; 5] = [
    "fine grain",
    "horizontal stripes (period 4)",
    "vertical stripes (period 2)",
    "checker (2 x 2)",
    "dots (2 x 2 on a 4 x 4 lattice)",
];

/// The generator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Seed.
    pub seed: u64,
    /// Grid size K.
    pub k: usize,
    /// Training maps (the data set: 10,000).
    pub train: usize,
    /// Validation maps (1,000).
    pub val: usize,
    /// Test maps (1,000).
    pub test: usize,
    /// Region seeds per map (None: max(3, K / 2)).
    pub regions: Option<usize>,
    /// Share of cells given a random type.
    pub isolated: f64,
}

impl GeneratorConfig {
    /// The data set's sizes for grid size `k`, seed 0.
    pub fn new(k: usize) -> Self {
        Self {
            seed: 0,
            k,
            train: 10_000,
            val: 1_000,
            test: 1_000,
            regions: None,
            isolated: 0.04,
        }
    }

    fn regions(&self) -> usize {
        self.regions.unwrap_or((self.k / 2).max(3))
    }
}

/// What the generator writes to `GENERATOR.json`: its settings and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorRecord {
    /// The settings.
    pub config: GeneratorConfig,
    /// Maps with more than one optimal path, per split (train, val, test).
    pub tied_maps: [usize; 3],
}

/// One generated map: terrain types, costs, the optimal path and the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    /// Terrain type per cell (index into [`COSTS`]), row-major.
    pub types: Vec<u8>,
    /// Costs per cell.
    pub costs: Vec<f32>,
    /// The optimal path's indicator.
    pub path: Vec<f32>,
    /// Whether another path has the same cost.
    pub tied: bool,
    /// The image, `8K x 8K x 3`, channels last.
    pub image: Vec<u8>,
}

fn draw_type(rng: &mut ChaCha8Rng) -> u8 {
    let u: f64 = rng.gen();
    let mut acc = 0.0;
    for (t, s) in TYPE_SHARES.iter().enumerate() {
        acc += s;
        if u < acc {
            return t as u8;
        }
    }
    4
}

/// The terrain of one map: Voronoi regions with ragged borders and isolated cells.
pub fn terrain(cfg: &GeneratorConfig, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let k = cfg.k;
    let seeds: Vec<(f64, f64, u8)> = (0..cfg.regions())
        .map(|_| {
            (
                rng.gen_range(0.0..k as f64),
                rng.gen_range(0.0..k as f64),
                draw_type(rng),
            )
        })
        .collect();
    let mut types = Vec::with_capacity(k * k);
    for r in 0..k {
        for c in 0..k {
            let (y, x) = (r as f64 + 0.5, c as f64 + 0.5);
            let t = seeds
                .iter()
                .map(|&(sy, sx, t)| {
                    let d = (y - sy).powi(2) + (x - sx).powi(2);
                    (d * rng.gen_range(0.7..1.3), t)
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(0, |p| p.1);
            types.push(if rng.gen::<f64>() < cfg.isolated {
                draw_type(rng)
            } else {
                t
            });
        }
    }
    types
}

/// Whether pixel `(y, x)` of a tile of type `t` (1 to 4) with phase `(a, b)` is
/// foreground (type 0, the grain, mixes the two colours at random instead).
fn ink(t: u8, y: usize, x: usize, a: usize, b: usize) -> bool {
    match t {
        1 => ((y + b) / 2).is_multiple_of(2),
        2 => (x + a).is_multiple_of(2),
        3 => ((x + a) / 2 + (y + b) / 2).is_multiple_of(2),
        _ => (x + a) % 4 < 2 && (y + b) % 4 < 2,
    }
}

/// The image of a terrain: one textured 8 x 8 tile per cell (see the module docs).
pub fn render(types: &[u8], k: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let px = CELL_PX * k;
    // Per map and type: a background colour and a foreground of another brightness.
    let palette: Vec<([f32; 3], [f32; 3])> = (0..COSTS.len())
        .map(|_| {
            let bg: [f32; 3] = std::array::from_fn(|_| rng.gen_range(60.0..196.0));
            let delta = rng.gen_range(50.0..100.0) * if rng.gen::<bool>() { 1.0 } else { -1.0 };
            (bg, bg.map(|v| v + delta))
        })
        .collect();
    let noise = Normal::new(0.0f32, 6.0).expect("valid");
    let mut img = vec![0u8; px * px * 3];
    for (cell, &t) in types.iter().enumerate() {
        let (r, c) = (cell / k, cell % k);
        let (bg, fg) = palette[t as usize];
        let bright = rng.gen_range(0.85f32..1.15);
        let (a, b) = (rng.gen_range(0..4), rng.gen_range(0..4));
        for y in 0..CELL_PX {
            for x in 0..CELL_PX {
                let mix = if t == 0 {
                    rng.gen::<f32>()
                } else if ink(t, y, x, a, b) {
                    1.0
                } else {
                    0.0
                };
                let o = ((r * CELL_PX + y) * px + c * CELL_PX + x) * 3;
                for ch in 0..3 {
                    let v = (bg[ch] + mix * (fg[ch] - bg[ch])) * bright + noise.sample(rng);
                    img[o + ch] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    img
}

/// Distances (path costs, start cell included) from cell `from` to every cell, in f64.
fn distances(costs: &[f32], k: usize, from: usize) -> Vec<f64> {
    use std::cmp::Reverse;
    let mut dist = vec![f64::INFINITY; k * k];
    let mut heap = std::collections::BinaryHeap::new();
    dist[from] = costs[from] as f64;
    // Non-negative f64 bits order like the numbers.
    heap.push((Reverse(dist[from].to_bits()), from));
    while let Some((Reverse(d), u)) = heap.pop() {
        let d = f64::from_bits(d);
        if d > dist[u] {
            continue;
        }
        let (r, c) = ((u / k) as isize, (u % k) as isize);
        for dr in -1..=1 {
            for dc in -1..=1 {
                let (nr, nc) = (r + dr, c + dc);
                if (dr, dc) == (0, 0) || nr < 0 || nc < 0 || nr >= k as isize || nc >= k as isize {
                    continue;
                }
                let v = nr as usize * k + nc as usize;
                let nd = d + costs[v] as f64;
                if nd < dist[v] {
                    dist[v] = nd;
                    heap.push((Reverse(nd.to_bits()), v));
                }
            }
        }
    }
    dist
}

/// Whether more than one top-left to bottom-right path attains the optimal cost: some
/// cell off `path` lies on an optimal path (relative tolerance 1e-9).
pub fn has_tie(costs: &[f32], k: usize, path: &[f32]) -> bool {
    let (s, e) = (0, k * k - 1);
    let from_s = distances(costs, k, s);
    let from_e = distances(costs, k, e);
    let best = from_s[e];
    (0..k * k).any(|v| {
        path[v] == 0.0 && (from_s[v] + from_e[v] - costs[v] as f64 - best).abs() <= 1e-9 * best
    })
}

/// Map `i` of the split whose stream is `stream` (see the module docs).
pub fn map(cfg: &GeneratorConfig, stream: &str, i: usize) -> Map {
    let k = cfg.k;
    let mut rng = ChaCha8Rng::seed_from_u64(crate::run::derive_seed(cfg.seed, stream, i as u64));
    let types = terrain(cfg, &mut rng);
    let costs: Vec<f32> = types.iter().map(|&t| COSTS[t as usize]).collect();
    let (cells, _) = grid_shortest_path(&costs, k, k, Neighbourhood::Eight)
        .expect("generated costs are finite and positive");
    let mut path = vec![0.0; k * k];
    cells.iter().for_each(|&c| path[c] = 1.0);
    let tied = has_tie(&costs, k, &path);
    let image = render(&types, k, &mut rng);
    Map {
        types,
        costs,
        path,
        tied,
        image,
    }
}

/// `n` maps of split `name` as a [`Split`], and how many have tied optimal paths.
pub fn split(cfg: &GeneratorConfig, name: &str, n: usize) -> (Split, usize) {
    let stream = format!("warcraft/{name}");
    let maps: Vec<Map> = (0..n)
        .into_par_iter()
        .map(|i| map(cfg, &stream, i))
        .collect();
    let k = cfg.k;
    let ties = maps.iter().filter(|m| m.tied).count();
    let mut s = Split {
        n,
        k,
        px: CELL_PX * k,
        maps: Vec::with_capacity(n * 64 * k * k * 3),
        weights: Vec::with_capacity(n * k * k),
        paths: Vec::with_capacity(n * k * k),
    };
    for m in maps {
        s.maps.extend(m.image);
        s.weights.extend(m.costs);
        s.paths.extend(m.path);
    }
    (s, ties)
}

/// A figure of the first `n` training maps: each image with its optimal path outlined,
/// and its cost grid (the data set's costs, with the path's cells marked).
pub fn preview(cfg: &GeneratorConfig, n: usize) -> crate::plot::Figure {
    use crate::plot::{Figure, HeatMap, Panel, PathPanel};
    let k = cfg.k;
    let maps: Vec<Map> = (0..n).map(|i| map(cfg, "warcraft/train", i)).collect();
    let images = maps
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Panel::Paths(PathPanel {
                title: format!("map {i}{}", if m.tied { " (tied optimum)" } else { "" }),
                image: m.image.clone(),
                px: CELL_PX * k,
                k,
                truth: m.path.clone(),
                paths: Vec::new(),
            })
        })
        .collect();
    let grids = maps
        .iter()
        .map(|m| {
            Panel::Heat(HeatMap {
                title: "cost (path cells negated)".into(),
                x_label: "column".into(),
                y_label: "row".into(),
                x_values: (0..k).map(|c| c as f64).collect(),
                y_values: (0..k).rev().map(|r| r as f64).collect(),
                values: (0..k)
                    .rev()
                    .map(|r| {
                        (0..k)
                            .map(|c| {
                                let i = r * k + c;
                                let v = m.costs[i] as f64;
                                if m.path[i] != 0.0 {
                                    -v
                                } else {
                                    v
                                }
                            })
                            .collect()
                    })
                    .collect(),
                annotate: false,
                colorbar_label: "cost".into(),
            })
        })
        .collect();
    Figure::rows(vec![images, grids], (330 * n as u32, 700)).title(format!(
        "Generated {k}x{k} Warcraft-like maps (seed {}): textures by terrain type, optimal paths",
        cfg.seed
    ))
}

/// Generates the three splits into `dir` (created if needed) with `GENERATOR.json` and
/// `preview.png` (the first four training maps, [`preview`]); returns the files written.
pub fn write(cfg: &GeneratorConfig, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context;
    if cfg.k < 2 {
        anyhow::bail!("the grid size K must be at least 2, got {}", cfg.k);
    }
    if cfg.train == 0 || cfg.val == 0 || cfg.test == 0 {
        anyhow::bail!("every split needs at least one map");
    }
    if !(0.0..=1.0).contains(&cfg.isolated) {
        anyhow::bail!(
            "the isolated-cell share must lie in [0, 1], got {}",
            cfg.isolated
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    let mut tied_maps = [0; 3];
    for (j, (name, n)) in [("train", cfg.train), ("val", cfg.val), ("test", cfg.test)]
        .into_iter()
        .enumerate()
    {
        let (s, ties) = split(cfg, name, n);
        tied_maps[j] = ties;
        files.extend(
            super::write_split(dir, name, &s)
                .with_context(|| format!("writing into {}", dir.display()))?,
        );
    }
    let record = GeneratorRecord {
        config: cfg.clone(),
        tied_maps,
    };
    let path = dir.join(super::GENERATOR_FILE);
    crate::output::write_json(&path, &record)?;
    files.push(path);
    let png = dir.join("preview.png");
    crate::output::write_atomic(&png, &preview(cfg, cfg.train.min(4)).to_png_bytes()?)?;
    files.push(png);
    Ok(files)
}
