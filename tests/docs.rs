//! The figures in `docs/` are what the code computes today.

const UNET_DOC: &str = include_str!("../docs/unet.md");

/// The text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn section<'a>(doc: &'a str, name: &str) -> &'a str {
    let begin = format!("<!-- {name}:begin -->\n");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("no {name} section"))
        + begin.len();
    let end = doc[start..]
        .find(&format!("<!-- {name}:end -->"))
        .expect("section end");
    &doc[start..start + end]
}

#[test]
fn unet_doc_shows_the_current_summary_and_costs() {
    let (layer_table, option_costs) = unet_rs::unet_cost_report().unwrap();
    assert_eq!(
        section(UNET_DOC, "summary"),
        format!("```text\n{layer_table}```\n"),
        "docs/unet.md is out of date: regenerate with `cargo run --example unet_costs`"
    );
    assert_eq!(
        section(UNET_DOC, "options"),
        option_costs,
        "docs/unet.md is out of date: regenerate with `cargo run --example unet_costs`"
    );
}

/// The pictures of the nuclei recipe are what the code draws today.
#[test]
fn recipe_figures_are_current() {
    let nuclei = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/nuclei-dsb2018"
    ));
    for (name, figure) in [
        (
            "weight-map.png",
            unet_rs::figures::weight_map_figure(nuclei).unwrap(),
        ),
        (
            "augmentation.png",
            unet_rs::figures::augmentation_figure(nuclei).unwrap(),
        ),
    ] {
        let path = format!("{}/docs/images/{name}", env!("CARGO_MANIFEST_DIR"));
        let saved = image::open(&path)
            .unwrap_or_else(|err| {
                panic!("{path}: {err}; draw it with `cargo run --example recipe_figures`")
            })
            .to_rgb8();
        assert!(
            saved == figure,
            "{path} is out of date: redraw it with `cargo run --example recipe_figures`"
        );
    }
}
