//! Checks on the real DSB2018 instance labels of `../shared/data/nuclei-dsb2018/labels`.
//! Figures: `cargo run -p imaging --example dsb2018_report`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use image::ImageReader;
use imaging::{
    BorderWeight, Connectivity, WatershedConfig, distance_to, label_components, matching, mean_ap,
    split_instances, weight_map,
};

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/nuclei-dsb2018/labels"
);

fn tiles() -> Vec<(String, Vec<u32>, usize, usize)> {
    assert!(
        Path::new(DIR).is_dir(),
        "{DIR}: the nuclei labels, expected in ../shared/data beside the repository"
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 12, "{DIR}: the twelve nuclei tiles' labels");
    paths
        .into_iter()
        .map(|p| {
            let img = ImageReader::open(&p)
                .unwrap()
                .decode()
                .unwrap()
                .into_luma16();
            let (w, h) = (img.width() as usize, img.height() as usize);
            let labels = img.into_raw().into_iter().map(u32::from).collect();
            (p.display().to_string(), labels, h, w)
        })
        .collect()
}

fn ids(labels: &[u32]) -> HashSet<u32> {
    labels.iter().copied().filter(|&l| l != 0).collect()
}

#[test]
fn weight_map_matches_full_per_instance_edt() {
    let cfg = BorderWeight::default();
    for (name, labels, h, w) in tiles() {
        let map = weight_map(&labels, h, w, &cfg).unwrap();
        // Reference: exact full-image EDT of every instance, eq. 2 on background.
        let dists: Vec<Vec<f32>> = ids(&labels)
            .into_iter()
            .map(|id| {
                let f: Vec<bool> = labels.iter().map(|&l| l == id).collect();
                distance_to(&f, h, w).unwrap()
            })
            .collect();
        let n = (h * w) as f64;
        let fg = labels.iter().filter(|&&l| l != 0).count() as f64;
        for i in (0..h * w).filter(|&i| labels[i] == 0) {
            let mut d: Vec<f64> = dists.iter().map(|v| f64::from(v[i])).collect();
            d.sort_by(f64::total_cmp);
            let s = d[0] + d[1];
            let expected = n / (2.0 * (n - fg)) + 10.0 * (-s * s / 50.0).exp();
            let diff = (f64::from(map[i]) - expected).abs();
            assert!(
                diff < 1e-5 * 10.0,
                "{name} pixel {i}: {} vs {expected}",
                map[i]
            );
        }
    }
}

#[test]
fn watershed_recovers_the_instances() {
    let (mut n_true, mut n_cc, mut n_ws, mut tp) = (0, 0, 0, 0);
    let (mut map_cc, mut map_ws, mut count) = (0.0, 0.0, 0.0);
    for (_, labels, h, w) in tiles() {
        let fg: Vec<bool> = labels.iter().map(|&l| l != 0).collect();
        let split = split_instances(&fg, h, w, &WatershedConfig::default()).unwrap();
        let cc = label_components(&fg, h, w, Connectivity::Eight).unwrap();
        let n = split.iter().copied().max().unwrap_or(0);
        assert_eq!(ids(&split), (1..=n).collect::<HashSet<u32>>());
        n_true += ids(&labels).len();
        n_cc += cc.count as usize;
        n_ws += n as usize;
        tp += matching(&labels, &split, h, w, 0.5).unwrap().tp;
        map_cc += mean_ap(&labels, &cc.labels, h, w).unwrap();
        map_ws += mean_ap(&labels, &split, h, w).unwrap();
        count += 1.0;
    }
    eprintln!("instances {n_true}, components {n_cc}, watershed {n_ws}, tp@0.5 {tp}");
    eprintln!(
        "mAP components {:.3}, watershed {:.3}",
        map_cc / count,
        map_ws / count
    );
    // Touching nuclei merge into fewer components; the watershed gets closer.
    assert!(n_cc < n_ws);
    assert!(n_ws.abs_diff(n_true) * 10 <= n_true, "{n_ws} vs {n_true}");
    assert!(tp * 10 >= n_true * 9, "tp {tp} of {n_true}");
    assert!(map_ws > map_cc + 0.05);
}
