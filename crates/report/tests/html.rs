//! `report.html` of a run folder on disk: every figure embedded byte for byte, nothing that
//! points outside the file, text escaped, missing figures left out.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use report::html::{HTML_FILE, Page, write_html};
use train::run_dir::RunDir;

/// A small PNG of its own size and colour, so that no two figures have the same bytes.
fn png(path: &Path, w: u32, h: u32, shade: u8) {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([shade, (x * 7 % 256) as u8, (y * 13 % 256) as u8])
    })
    .save_with_format(path, image::ImageFormat::Png)
    .unwrap();
}

/// The values of every attribute that can make a browser fetch or navigate (`src`, `href`
/// and their kin), quoted or not, in every tag (text, escaped, holds no `<`).
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        let lower = tag.to_ascii_lowercase();
        for attr in [
            "src",
            "href",
            "srcset",
            "action",
            "formaction",
            "poster",
            "data",
            "background",
        ] {
            let pattern = format!("{attr}=");
            let mut from = 0;
            while let Some(at) = lower[from..].find(&pattern) {
                let start = from + at;
                from = start + pattern.len();
                // An attribute's name, not the tail of a longer one (`data-src=`) or a value.
                if !lower[..start].ends_with(|c: char| c.is_ascii_whitespace()) {
                    continue;
                }
                let rest = &tag[from..];
                let value = match rest.chars().next() {
                    Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
                    _ => rest.split([' ', '\t', '\n']).next().unwrap_or(""),
                };
                out.push(value.to_string());
            }
        }
    }
    out
}

/// References that are neither `data:` URIs nor in-page anchors.
fn outside(html: &str) -> Vec<String> {
    references(html)
        .into_iter()
        .filter(|r| !(r.starts_with("data:") || r.starts_with('#')))
        .collect()
}

/// Each `<img>`: its `src` and `alt`.
fn images(html: &str) -> Vec<(String, String)> {
    html.split("<img ")
        .skip(1)
        .map(|tag| {
            let tag = tag.split('>').next().unwrap();
            let attr = |name: &str| {
                tag.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|v| v.split('"').next())
                    .unwrap_or_default()
                    .to_string()
            };
            (attr("src"), attr("alt"))
        })
        .collect()
}

/// The bytes a `data:image/png;base64,` URI holds.
fn decoded(src: &str) -> Vec<u8> {
    let b64 = src
        .strip_prefix("data:image/png;base64,")
        .unwrap_or_else(|| panic!("not an embedded PNG: {}", &src[..src.len().min(80)]));
    STANDARD.decode(b64).unwrap()
}

const SWEEP: &str = "\n## Label efficiency\n\nEncoder: pretrained in this run.\n\n\
                     | labels per class | labels | fine-tuned |\n|---|---|---|\n\
                     | 1 | 10 | 8.33% |\n\n![label efficiency](label_efficiency.png)\n";

fn page<'a>(sections: &'a str) -> Page<'a> {
    Page {
        title: "simclr-rs run",
        setup: "- compute: cpu (2 threads)\n- seed: 42\n\n",
        results: "| run | best validation accuracy |\n|---|---|\n| supervised baseline | 12.50% |\n\n\
                  Published for the Keras example: baseline 59.9%.\n\n",
        sections,
    }
}

/// A run folder with every figure of a sweep, `summary.txt` and `config.toml`.
fn full_folder(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = [
        ("val_acc.png", 90, 56, 10),
        ("val_loss.png", 91, 56, 60),
        ("augmentations.png", 84, 54, 110),
        ("embedding.png", 100, 76, 160),
        ("label_efficiency.png", 90, 57, 210),
    ];
    std::fs::write(
        dir.join("summary.txt"),
        "Model: \"encoder\"\n│ conv1 │ 224 │\n",
    )
    .unwrap();
    std::fs::write(dir.join("config.toml"), "[data]\nkind = \"stl10\"\n").unwrap();
    files
        .iter()
        .map(|&(name, w, h, shade)| {
            png(&dir.join(name), w, h, shade);
            (name, std::fs::read(dir.join(name)).unwrap())
        })
        .collect()
}

fn written(dir: &Path, page: &Page) -> String {
    write_html(&RunDir::read_only(dir), page).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    std::fs::read_to_string(dir.join(HTML_FILE)).unwrap()
}

#[test]
fn every_figure_is_embedded_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let files = full_folder(dir.path());
    let html = written(dir.path(), &page(SWEEP));
    let imgs = images(&html);
    assert_eq!(imgs.len(), files.len(), "one <img> per figure");
    for (name, bytes) in &files {
        assert!(
            imgs.iter().any(|(src, _)| decoded(src) == *bytes),
            "{name} is not embedded as its own bytes"
        );
    }
    // In the report's order, the sweep's picture (from the markdown section) after the run's.
    let alts: Vec<&str> = imgs.iter().map(|(_, alt)| alt.as_str()).collect();
    assert_eq!(
        alts,
        [
            "validation accuracy",
            "validation loss",
            "augmentations",
            "test-set features after pretraining, PCA",
            "label efficiency"
        ]
    );
    assert_eq!(decoded(&imgs[4].0), files[4].1, "the sweep's image");
    // Sizes are given, so the layout does not jump while images decode.
    assert!(html.contains("width=\"90\" height=\"56\""), "{html}");
    // The rest of the content: set-up, table, the sweep's section, summaries and config.
    for part in [
        "<li>compute: cpu (2 threads)</li>",
        "<td>supervised baseline</td><td>12.50%</td>",
        "<p>Published for the Keras example: baseline 59.9%.</p>",
        "<h2 id=\"label-efficiency\">Label efficiency</h2>",
        "<th scope=\"col\">labels per class</th>",
        "Model: &quot;encoder&quot;\n│ conv1 │ 224 │</pre>",
        "kind = &quot;stl10&quot;</pre>",
        "<a href=\"#label-efficiency\">Label efficiency</a>",
    ] {
        assert!(html.contains(part), "missing {part:?} in\n{html}");
    }
}

#[test]
fn nothing_points_outside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    full_folder(dir.path());
    let html = written(dir.path(), &page(SWEEP));
    assert_eq!(outside(&html), Vec::<String>::new());
    let lower = html.to_ascii_lowercase();
    for banned in [
        "<script", "<link", "<iframe", "<object", "<embed", "@import", "url(",
    ] {
        assert!(!lower.contains(banned), "{banned} in the page");
    }
    // Every anchor has its target.
    for r in references(&html).iter().filter(|r| r.starts_with('#')) {
        assert!(
            html.contains(&format!("id=\"{}\"", &r[1..])),
            "no target for {r}"
        );
    }
    // Phone and laptop: the viewport, images that shrink, tables and code that scroll.
    for rule in [
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "img{display:block;max-width:100%;height:auto",
        ".table-wrap{overflow-x:auto",
        "pre{overflow-x:auto",
        "main{max-width:",
    ] {
        assert!(html.contains(rule), "missing {rule}");
    }
    assert_eq!(html.matches("<table>").count(), 2);
    assert_eq!(html.matches("<div class=\"table-wrap\">").count(), 2);
}

#[test]
fn the_checks_catch_a_page_that_links_its_figures() {
    // What a page that linked its figures (as report.md does) would look like.
    let broken = r##"<img src="val_acc.png" alt="a"><IMG SRC='x.png'><a href=https://x>x</a>
        <a href="#ok">ok</a><img src="data:image/png;base64,AAAA">"##;
    assert_eq!(outside(broken), ["val_acc.png", "x.png", "https://x"]);
    let linked = images(broken);
    assert_eq!(linked[0].0, "val_acc.png");
    assert!(std::panic::catch_unwind(|| decoded(&linked[0].0)).is_err());
}

#[test]
fn text_is_escaped_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("summary.txt"),
        "<script>alert(1)</script> & more",
    )
    .unwrap();
    std::fs::write(dir.path().join("config.toml"), "root = \"/a<b>&c\"\n").unwrap();
    let page = Page {
        title: "run <1> & \"two\"",
        setup: "- data: \"stl10\" at /tmp/<x>&y\n",
        results: "| run | a<b |\n|---|---|\n| x & y | 'q' |\n",
        sections: "## <i>odd</i> & heading\n\n<img src=\"http://x/y.png\"> & text\n\n- <b>\n",
    };
    let html = written(dir.path(), &page);
    for raw in ["<script>", "<x>", "<i>", "<b>", "<img src=\"http", "a<b"] {
        assert!(!html.contains(raw), "{raw} unescaped in\n{html}");
    }
    for escaped in [
        "<title>run &lt;1&gt; &amp; &quot;two&quot;</title>",
        "<h1>run &lt;1&gt; &amp; &quot;two&quot;</h1>",
        "<li>data: &quot;stl10&quot; at /tmp/&lt;x&gt;&amp;y</li>",
        "<th scope=\"col\">a&lt;b</th>",
        "<td>x &amp; y</td><td>&#39;q&#39;</td>",
        "&lt;i&gt;odd&lt;/i&gt; &amp; heading</h2>",
        "<p>&lt;img src=&quot;http://x/y.png&quot;&gt; &amp; text</p>",
        "<li>&lt;b&gt;</li>",
        "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more</pre>",
        "root = &quot;/a&lt;b&gt;&amp;c&quot;</pre>",
    ] {
        assert!(html.contains(escaped), "missing {escaped:?} in\n{html}");
    }
    assert_eq!(outside(&html), Vec::<String>::new());
}

#[test]
fn missing_figures_are_absent_not_broken() {
    let dir = tempfile::tempdir().unwrap();
    let files = full_folder(dir.path());
    for f in ["embedding.png", "augmentations.png", "summary.txt"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    // A sweep section whose picture is missing, and one that names something not a file here.
    let sections = "## Extra\n\n![gone](gone.png)\n\n![up](../val_acc.png)\n";
    let html = written(dir.path(), &page(sections));
    let imgs = images(&html);
    assert_eq!(imgs.len(), 2, "only val_acc.png and val_loss.png remain");
    assert_eq!(decoded(&imgs[0].0), files[0].1);
    assert_eq!(decoded(&imgs[1].0), files[1].1);
    for gone in [
        "embedding",
        "Feature space",
        "augmentations",
        "Model summaries",
        "gone",
        "../",
    ] {
        assert!(!html.contains(gone), "{gone} in\n{html}");
    }
    assert!(html.contains("<h2>Configuration</h2>"));
    assert_eq!(outside(&html), Vec::<String>::new());

    // A file that is not an image is a note, not a broken picture.
    std::fs::write(dir.path().join("embedding.png"), "not a png").unwrap();
    let html = written(dir.path(), &page(""));
    assert_eq!(images(&html).len(), 2);
    assert!(
        html.contains("embedding.png is not a readable PNG or JPEG image"),
        "{html}"
    );
}

#[test]
fn an_empty_folder_still_gives_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let html = written(dir.path(), &Page::default());
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(
        images(&html).is_empty() && !html.contains("<section"),
        "{html}"
    );
    assert!(
        !html.contains("href=\"#set-up\""),
        "no link to a missing section"
    );
}

#[test]
fn a_link_to_a_file_elsewhere_is_not_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "password = hunter2\n").unwrap();
    std::os::unix::fs::symlink(&secret, run.join("config.toml")).unwrap();
    png(&dir.path().join("elsewhere.png"), 8, 8, 1);
    std::os::unix::fs::symlink(dir.path().join("elsewhere.png"), run.join("val_acc.png")).unwrap();
    let html = written(&run, &page(""));
    assert!(
        !html.contains("hunter2"),
        "a linked config.toml is left out"
    );
    assert!(images(&html).is_empty(), "a linked figure is left out");
}
