use burn::tensor::{Device, Distribution, Tensor};
use layers::Conv2dConfig;
use std::time::Instant;
fn main() {
    let which = std::env::args().nth(1).unwrap_or("dw".into());
    let device = Device::flex();
    let x = Tensor::<4>::random([4, 64, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let layer = if which == "dw" {
        Conv2dConfig::depthwise(64, 1, [3, 3])
            .with_padding(layers::Padding::uniform(1))
            .init(&device)
    } else {
        Conv2dConfig::new(64, 64, [3, 3])
            .with_padding(layers::Padding::uniform(1))
            .init(&device)
    };
    let mut v = vec![];
    for _ in 0..200 {
        let s = Instant::now();
        let y = layer.forward(x.clone());
        let _ = y.into_data();
        v.push(s.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("median {:.3} ms", v[100]);
}
