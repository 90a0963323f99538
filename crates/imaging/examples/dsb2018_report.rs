//! Runs the distance transform, the weight map and the watershed on the
//! DSB2018 instance labels and prints per-tile figures.
//!
//! `cargo run -p imaging --example dsb2018_report [-- LABELS_DIR]`
//! (the dev profile optimises this crate fully, as the layers).

use std::collections::{HashMap, HashSet};
use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image::ImageReader;
use imaging::{
    BorderWeight, Connectivity, WatershedConfig, distance_to, inside_distance, label_components,
    matching, mean_ap, split_instances, weight_map,
};

const DEFAULT_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/nuclei-dsb2018/labels"
);

fn load(path: &PathBuf) -> Result<(Vec<u32>, usize, usize), Box<dyn Error>> {
    let img = ImageReader::open(path)?.decode()?.into_luma16();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Ok((img.into_raw().into_iter().map(u32::from).collect(), h, w))
}

/// (distinct touching id pairs under 8-adjacency, 4-adjacent pixel pairs
/// with two different nonzero ids).
fn touching(labels: &[u32], h: usize, w: usize) -> (usize, usize) {
    let mut pairs = HashSet::new();
    let mut pixel_pairs = 0;
    for y in 0..h {
        for x in 0..w {
            let a = labels[y * w + x];
            if a == 0 {
                continue;
            }
            for (dy, dx) in [(0, 1), (1, 0), (1, 1), (1, -1)] {
                let (ny, nx) = (y + dy, x as isize + dx);
                if ny >= h || nx < 0 || nx as usize >= w {
                    continue;
                }
                let b = labels[ny * w + nx as usize];
                if b != 0 && b != a {
                    pairs.insert((a.min(b), a.max(b)));
                    if dy == 0 || dx == 0 {
                        pixel_pairs += 1;
                    }
                }
            }
        }
    }
    (pairs.len(), pixel_pairs)
}

/// Untruncated reference weight map: one full-image EDT per instance.
fn weight_map_full(labels: &[u32], h: usize, w: usize, cfg: &BorderWeight) -> Vec<f32> {
    let ids: HashSet<u32> = labels.iter().copied().filter(|&l| l != 0).collect();
    let mut d1 = vec![f32::INFINITY; h * w];
    let mut d2 = vec![f32::INFINITY; h * w];
    for id in ids {
        let features: Vec<bool> = labels.iter().map(|&l| l == id).collect();
        let d = distance_to(&features, h, w).expect("shape");
        for i in 0..h * w {
            if d[i] < d1[i] {
                d2[i] = d1[i];
                d1[i] = d[i];
            } else if d[i] < d2[i] {
                d2[i] = d[i];
            }
        }
    }
    let n = (h * w) as f32;
    let fg = labels.iter().filter(|&&l| l != 0).count() as f32;
    let k = f32::from(u8::from(fg > 0.0) + u8::from(fg < n));
    (0..h * w)
        .map(|i| {
            if labels[i] != 0 {
                return n / (k * fg);
            }
            let s = d1[i] + d2[i];
            let term = if d2[i].is_finite() {
                cfg.w0 * (-s * s / (2.0 * cfg.sigma * cfg.sigma)).exp()
            } else {
                0.0
            };
            n / (k * (n - fg)) + term
        })
        .collect()
}

fn time<T>(reps: u32, mut f: impl FnMut() -> T) -> (T, Duration) {
    let start = Instant::now();
    let mut out = f();
    for _ in 1..reps {
        out = f();
    }
    (out, start.elapsed() / reps)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_DIR.to_string());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    let cfg = BorderWeight::default();
    let ws = WatershedConfig::default();
    println!(
        "{:<14} {:>5} {:>6} {:>7} {:>8} {:>9} {:>9} {:>9} {:>8} {:>5} {:>5} {:>5} {:>6} {:>6}",
        "tile",
        "inst",
        "touch",
        "pxpairs",
        "edt_us",
        "wmap_us",
        "full_us",
        "maxdiff",
        "ws_us",
        "cc",
        "ws",
        "tp.5",
        "mAPcc",
        "mAPws"
    );
    let mut totals: HashMap<&str, f64> = HashMap::new();
    for path in &paths {
        let (labels, h, w) = load(path)?;
        let n_inst = labels
            .iter()
            .copied()
            .filter(|&l| l != 0)
            .collect::<HashSet<_>>()
            .len();
        let (touch, pixel_pairs) = touching(&labels, h, w);
        let fg: Vec<bool> = labels.iter().map(|&l| l != 0).collect();
        let (_, t_edt) = time(50, || inside_distance(&fg, h, w));
        let (map, t_map) = time(20, || weight_map(&labels, h, w, &cfg));
        let map = map?;
        let (full, t_full) = time(5, || weight_map_full(&labels, h, w, &cfg));
        let max_diff = map
            .iter()
            .zip(&full)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let (split, t_ws) = time(20, || split_instances(&fg, h, w, &ws));
        let split = split?;
        let cc = label_components(&fg, h, w, Connectivity::Eight)?;
        let n_ws = split.iter().copied().max().unwrap_or(0);
        let m5 = matching(&labels, &split, h, w, 0.5)?;
        let map_cc = mean_ap(&labels, &cc.labels, h, w)?;
        let map_ws = mean_ap(&labels, &split, h, w)?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        println!(
            "{:<14} {:>5} {:>6} {:>7} {:>8.1} {:>9.1} {:>9.1} {:>9.2e} {:>8.1} {:>5} {:>5} {:>5} {:>6.3} {:>6.3}",
            name,
            n_inst,
            touch,
            pixel_pairs,
            t_edt.as_secs_f64() * 1e6,
            t_map.as_secs_f64() * 1e6,
            t_full.as_secs_f64() * 1e6,
            max_diff,
            t_ws.as_secs_f64() * 1e6,
            cc.count,
            n_ws,
            m5.tp,
            map_cc,
            map_ws
        );
        for (k, v) in [
            ("inst", n_inst as f64),
            ("touch", touch as f64),
            ("pxpairs", pixel_pairs as f64),
            ("cc", f64::from(cc.count)),
            ("ws", f64::from(n_ws)),
            ("tp", m5.tp as f64),
            ("fp", m5.fp as f64),
            ("fn", m5.fn_ as f64),
            ("map_cc", map_cc),
            ("map_ws", map_ws),
            ("t_map", t_map.as_secs_f64() * 1e6),
            ("t_full", t_full.as_secs_f64() * 1e6),
            ("t_ws", t_ws.as_secs_f64() * 1e6),
        ] {
            *totals.entry(k).or_insert(0.0) += v;
        }
    }
    let n = paths.len() as f64;
    let t = |k: &str| totals.get(k).copied().unwrap_or(0.0);
    println!(
        "total: {} instances, {} touching pairs ({} 4-adjacent pixel pairs), {} components, \
         {} watershed objects; at IoU 0.5: tp {} fp {} fn {}",
        t("inst"),
        t("touch"),
        t("pxpairs"),
        t("cc"),
        t("ws"),
        t("tp"),
        t("fp"),
        t("fn")
    );
    println!(
        "mean per tile: weight map {:.1} us (full per-instance EDT {:.1} us), watershed {:.1} us; \
         mean mAP(DSB) components {:.3}, watershed {:.3}",
        t("t_map") / n,
        t("t_full") / n,
        t("t_ws") / n,
        t("map_cc") / n,
        t("map_ws") / n
    );
    h_sweep(&paths)?;
    stitched_timing(&paths, &cfg)?;
    Ok(())
}

/// Watershed totals over all tiles for a few marker heights `h`.
fn h_sweep(paths: &[PathBuf]) -> Result<(), Box<dyn Error>> {
    for h_marker in [0.5f32, 1.0, 1.5, 2.0, 3.0, 4.0] {
        let ws = WatershedConfig {
            h: h_marker,
            ..WatershedConfig::default()
        };
        let (mut objects, mut tp, mut map) = (0u32, 0usize, 0.0);
        for path in paths {
            let (labels, h, w) = load(path)?;
            let fg: Vec<bool> = labels.iter().map(|&l| l != 0).collect();
            let split = split_instances(&fg, h, w, &ws)?;
            objects += split.iter().copied().max().unwrap_or(0);
            tp += matching(&labels, &split, h, w, 0.5)?.tp;
            map += mean_ap(&labels, &split, h, w)?;
        }
        println!(
            "h = {h_marker}: {objects} watershed objects, tp@0.5 {tp}, mean mAP {:.3}",
            map / paths.len() as f64
        );
    }
    Ok(())
}

/// The tiles stitched into one image (rows 0-3 x columns 0-2 of 128 px),
/// ids offset per tile, to time the weight map on a larger image.
fn stitched_timing(paths: &[PathBuf], cfg: &BorderWeight) -> Result<(), Box<dyn Error>> {
    let (tile, rows, cols) = (128usize, 4usize, 3usize);
    let (h, w) = (tile * rows, tile * cols);
    let mut labels = vec![0u32; h * w];
    for (k, path) in paths.iter().enumerate().take(rows * cols) {
        let (t, th, tw) = load(path)?;
        let (r, c) = (k / cols, k % cols);
        for y in 0..th.min(tile) {
            for x in 0..tw.min(tile) {
                let id = t[y * tw + x];
                if id != 0 {
                    labels[(r * tile + y) * w + c * tile + x] = id + 1000 * k as u32;
                }
            }
        }
    }
    let n = labels
        .iter()
        .copied()
        .filter(|&l| l != 0)
        .collect::<HashSet<_>>()
        .len();
    let (_, t_map) = time(5, || weight_map(&labels, h, w, cfg));
    let (_, t_full) = time(1, || weight_map_full(&labels, h, w, cfg));
    println!(
        "stitched {h}x{w}, {n} instances: weight map {:.2} ms, full per-instance EDT {:.2} ms",
        t_map.as_secs_f64() * 1e3,
        t_full.as_secs_f64() * 1e3
    );
    Ok(())
}
