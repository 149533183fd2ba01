//! `report.html`: what `report.md` says, as one self-contained page that reads well on a phone
//! and on a laptop. Every figure is embedded as a `data:` URI and the style is inline: the page
//! loads nothing else (no script, font, style sheet or link; its Content-Security-Policy tells
//! the browser so too). Beside `report.md`'s content it shows the folder's `summary.txt` and
//! `config.toml`.
//!
//! The parts that arrive as markdown go through a small converter for the subset the reports
//! use: headings, paragraphs, bullet lists, pipe tables, and images alone on their line that
//! name a PNG or JPEG file of the run folder (embedded; any other image, or a missing file, is
//! left out). Everything else is shown as escaped text.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::markdown::{LIBTORCH_VERSION, TCH_VERSION};
use train::error::Result;
use train::run_dir::RunDir;
use train::run_dir::atomic::write_file;

/// The largest file the page embeds (64 MiB): a figure or text beyond it, or anything but a
/// regular file (a link), is left out with a warning.
const MAX_EMBED: u64 = 64 << 20;

/// The page's file name in a run folder.
pub const HTML_FILE: &str = "report.html";

/// What `report.html` shows besides the run folder's own files, as markdown: the parts of
/// `report.md` it lays out under headings of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page<'a> {
    /// The page's title (`<title>` and heading).
    pub title: &'a str,
    /// How and on what the run ran: [`crate::markdown::setup`]'s bullet list.
    pub setup: &'a str,
    /// The best validation accuracies: the table and the published figures.
    pub results: &'a str,
    /// Further sections (such as the label-efficiency sweep's), each under its own `##`
    /// heading; their images name files of the run folder.
    pub sections: &'a str,
}

/// Writes `report.html` into `dir` (atomically): `page`, then the folder's figures
/// (`val_acc.png`, `val_loss.png`, `augmentations.png`, `embedding.png`, each where present),
/// the further sections, `summary.txt` and `config.toml` (where present); all embedded.
pub fn write_html(dir: &RunDir, page: &Page) -> Result<()> {
    write_file(&dir.file(HTML_FILE), render(&dir.path, page))
}

/// A figure a run folder may hold.
pub(crate) struct Figure {
    /// Its file in the run folder.
    pub file: &'static str,
    /// Its alternative text (also `report.md`'s image text).
    pub alt: &'static str,
    /// Its caption on the page.
    pub caption: &'static str,
    /// Whether `report.md` names it only when the folder has it (the others it always names).
    pub optional: bool,
}

/// The page's figure sections, in order: heading and the figures under it. `report.md` lists
/// the same figures in the same order.
pub(crate) const FIGURE_SECTIONS: [(&str, &[Figure]); 3] = [
    (
        "Training curves",
        &[
            Figure {
                file: "val_acc.png",
                alt: "validation accuracy",
                caption: "Validation accuracy per epoch of each run (and of the kNN monitor, \
                          when it ran).",
                optional: false,
            },
            Figure {
                file: "val_loss.png",
                alt: "validation loss",
                caption: "Validation loss per epoch of each run.",
                optional: false,
            },
        ],
    ),
    (
        "Augmentations",
        &[Figure {
            file: "augmentations.png",
            alt: "augmentations",
            caption: "Training images: original, weakly augmented (the probe's and the \
                      classifiers' transform) and two strongly augmented views (the contrastive \
                      pair).",
            optional: false,
        }],
    ),
    (
        "Feature space",
        &[Figure {
            file: "embedding.png",
            alt: "test-set features after pretraining, PCA",
            caption: "Test-set features after pretraining, by class, on their first two \
                      principal components.",
            optional: true,
        }],
    ),
];

const STYLE: &str = "\
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:#fff;color:#1f2328;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}
main{max-width:62rem;margin:0 auto;padding:1rem 1rem 2rem}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}
h2{font-size:1.25rem;line-height:1.3;margin:2rem 0 .75rem;padding-bottom:.25rem;border-bottom:1px solid #d0d7de}
h3,h4,h5,h6{font-size:1.05rem;margin:1.25rem 0 .5rem}
nav ul{list-style:none;padding:0;margin:0 0 1rem;display:flex;flex-wrap:wrap;gap:.25rem .5rem}
nav a{display:inline-block;padding:.15rem .55rem;border:1px solid #d0d7de;border-radius:1rem;color:#0550ae;text-decoration:none;font-size:.9rem}
li{overflow-wrap:anywhere}
p{overflow-wrap:anywhere}
figure{margin:1rem 0 1.5rem}
img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:.875rem;color:#59636e;text-align:center;margin-top:.35rem}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:0 0 1rem;border:1px solid #d0d7de;border-radius:6px}
table{border-collapse:collapse;min-width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.4rem .65rem;text-align:left;vertical-align:top;border-bottom:1px solid #d0d7de;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;white-space:normal;min-width:4.5rem}
td:first-child,th:first-child{white-space:normal;min-width:9rem}
tbody tr:last-child td{border-bottom:0}
pre{overflow-x:auto;-webkit-overflow-scrolling:touch;background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:.75rem;margin:0 0 1rem;font:13px/1.2 ui-monospace,SFMono-Regular,\"DejaVu Sans Mono\",Menlo,Consolas,monospace;white-space:pre;tab-size:4}
.note{color:#9a6700}
.file{font-size:.875rem;color:#59636e;margin:0 0 .35rem}
footer{margin-top:2.5rem;padding-top:.75rem;border-top:1px solid #d0d7de;font-size:.875rem;color:#59636e}
footer a{color:#0550ae}
";

/// The whole page for the run folder at `dir`.
fn render(dir: &Path, page: &Page) -> String {
    let mut doc = Doc {
        dir,
        ids: HashSet::new(),
        nav: Vec::new(),
    };
    let mut body = String::new();
    let setup = doc.markdown(page.setup);
    let has_setup = !setup.is_empty();
    doc.section(&mut body, "Set-up", &setup);
    let results = doc.markdown(page.results);
    doc.section(&mut body, "Best validation accuracy", &results);
    for (title, figures) in FIGURE_SECTIONS {
        let figures: String = figures
            .iter()
            .map(|f| doc.figure(f.file, f.alt, f.caption))
            .collect();
        doc.section(&mut body, title, &figures);
    }
    body.push_str(&doc.markdown(page.sections));
    for (title, file) in [
        ("Model summaries", "summary.txt"),
        ("Configuration", "config.toml"),
    ] {
        let text = doc.text(file);
        let pre = text.map_or(String::new(), |t| {
            format!(
                "<p class=\"file\">{file}</p>\n<pre>{}</pre>\n",
                escape(t.trim_end())
            )
        });
        doc.section(&mut body, title, &pre);
    }

    let title = escape(page.title);
    let mut html = String::with_capacity(body.len() + STYLE.len() + 2048);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         img-src data:; style-src 'unsafe-inline'\">\n\
         <meta name=\"generator\" content=\"simclr-rs {version}\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <header>\n<h1>{title}</h1>\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    if !doc.nav.is_empty() {
        html.push_str("<nav aria-label=\"Contents\"><ul>\n");
        for (id, text) in &doc.nav {
            let _ = writeln!(html, "<li><a href=\"#{id}\">{}</a></li>", escape(text));
        }
        html.push_str("</ul></nav>\n");
    }
    html.push_str("</header>\n");
    html.push_str(&body);
    let _ = write!(
        html,
        "<footer>Written by simclr-rs {}, with tch {TCH_VERSION} and libtorch {LIBTORCH_VERSION}",
        env!("CARGO_PKG_VERSION")
    );
    if has_setup {
        html.push_str(
            "; the run's compute, data and versions are under <a href=\"#set-up\">Set-up</a>",
        );
    }
    html.push_str(".</footer>\n</main>\n</body>\n</html>\n");
    html
}

/// The page being written: the run folder its files come from, the ids taken, and the
/// contents (id, heading) of its sections.
struct Doc<'a> {
    dir: &'a Path,
    ids: HashSet<String>,
    nav: Vec<(String, String)>,
}

impl Doc<'_> {
    /// A new id for the heading `text`: its slug, numbered when taken.
    fn id(&mut self, text: &str) -> String {
        let base = slug(text);
        let mut id = base.clone();
        let mut n = 2;
        while !self.ids.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }

    /// Appends `content` to `body` under the heading `title`; nothing when `content` is empty.
    fn section(&mut self, body: &mut String, title: &str, content: &str) {
        if content.trim().is_empty() {
            return;
        }
        let id = self.id(title);
        let _ = write!(
            body,
            "<section id=\"{id}\">\n<h2>{}</h2>\n{content}</section>\n",
            escape(title)
        );
        self.nav.push((id, title.to_string()));
    }

    /// The folder's text file `name`, if it has one.
    fn text(&self, name: &str) -> Option<String> {
        self.read(name)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The bytes of the folder's file `name`: `None` when it is missing, `name` is not a plain
    /// file name (a path, a URL), or the file is not a regular file of at most [`MAX_EMBED`]
    /// bytes or cannot be read (said in a warning: the page goes without it).
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        let plain = !name.is_empty()
            && Path::new(name).file_name().and_then(|n| n.to_str()) == Some(name)
            && !name.contains(['/', '\\', ':']);
        if !plain {
            return None;
        }
        let path = self.dir.join(name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("report.html goes without {}: {e}", path.display());
                return None;
            }
        };
        if !meta.is_file() || meta.len() > MAX_EMBED {
            tracing::warn!(
                "report.html goes without {}: not a regular file of at most {MAX_EMBED} bytes",
                path.display()
            );
            return None;
        }
        std::fs::read(&path)
            .inspect_err(|e| tracing::warn!("report.html goes without {}: {e}", path.display()))
            .ok()
    }

    /// The folder's image `name` embedded in a `<figure>`: nothing when the folder has no such
    /// file, a note when it is not a PNG or JPEG image that decodes.
    fn figure(&self, name: &str, alt: &str, caption: &str) -> String {
        let Some(bytes) = self.read(name) else {
            return String::new();
        };
        let Some((mime, width, height)) = image_kind(&bytes) else {
            return format!(
                "<p class=\"note\">{} is not a readable PNG or JPEG image.</p>\n",
                escape(name)
            );
        };
        format!(
            "<figure>\n<img src=\"data:{mime};base64,{}\" width=\"{width}\" height=\"{height}\" \
             alt=\"{}\">\n<figcaption>{}</figcaption>\n</figure>\n",
            STANDARD.encode(&bytes),
            escape(alt),
            escape(caption)
        )
    }

    /// `md` as HTML, for the subset described in the module's documentation; level-2 headings
    /// join the page's contents.
    fn markdown(&mut self, md: &str) -> String {
        let lines: Vec<Line> = md.lines().map(Line::of).collect();
        let mut html = String::new();
        let mut i = 0;
        while i < lines.len() {
            // The run of lines of the same kind as line i forms one block.
            let end = (i + 1..lines.len())
                .find(|&j| !lines[i].continues_with(&lines[j]))
                .unwrap_or(lines.len());
            let block = &lines[i..end];
            match lines[i] {
                Line::Blank => {}
                Line::Heading(level, text) => {
                    let id = self.id(text);
                    let _ = writeln!(html, "<h{level} id=\"{id}\">{}</h{level}>", escape(text));
                    if level == 2 {
                        self.nav.push((id, text.to_string()));
                    }
                }
                Line::Image(alt, src) => html.push_str(&self.figure(src, alt, alt)),
                Line::Row(_) => html.push_str(&table(block)),
                Line::Item(_) => {
                    html.push_str("<ul>\n");
                    for line in block {
                        if let Line::Item(text) = line {
                            let _ = writeln!(html, "<li>{}</li>", escape(text));
                        }
                    }
                    html.push_str("</ul>\n");
                }
                Line::Text(_) => {
                    let text: Vec<&str> = block
                        .iter()
                        .filter_map(|l| match l {
                            Line::Text(t) => Some(*t),
                            _ => None,
                        })
                        .collect();
                    let _ = writeln!(html, "<p>{}</p>", escape(&text.join(" ")));
                }
            }
            i = end;
        }
        html
    }
}

/// One line of markdown, by what it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line<'a> {
    Blank,
    /// `#` to `######`, then the heading's text.
    Heading(usize, &'a str),
    /// `![alt](src)` alone on its line.
    Image(&'a str, &'a str),
    /// A pipe-table row: `| a | b |`.
    Row(&'a str),
    /// A bullet: `- text`, `* text` or `+ text`.
    Item(&'a str),
    Text(&'a str),
}

impl<'a> Line<'a> {
    fn of(line: &'a str) -> Self {
        let t = line.trim();
        if t.is_empty() {
            return Line::Blank;
        }
        let hashes = t.len() - t.trim_start_matches('#').len();
        if (1..=6).contains(&hashes) {
            let rest = &t[hashes..];
            if rest.is_empty() || rest.starts_with([' ', '\t']) {
                return Line::Heading(hashes, rest.trim().trim_end_matches('#').trim_end());
            }
        }
        if let Some(inner) = t.strip_prefix("![").and_then(|r| r.strip_suffix(')'))
            && let Some((alt, src)) = inner.split_once("](")
        {
            return Line::Image(alt.trim(), src.trim());
        }
        if t.starts_with('|') {
            return Line::Row(t);
        }
        if let Some(item) = ["- ", "* ", "+ "].iter().find_map(|b| t.strip_prefix(b)) {
            return Line::Item(item.trim());
        }
        Line::Text(t)
    }

    /// Whether `next` belongs to the same block as `self` (a paragraph's, a list's or a
    /// table's lines); headings and images stand alone.
    fn continues_with(&self, next: &Line) -> bool {
        matches!(
            (self, next),
            (Line::Blank, Line::Blank)
                | (Line::Row(_), Line::Row(_))
                | (Line::Item(_), Line::Item(_))
                | (Line::Text(_), Line::Text(_))
        )
    }
}

/// A pipe table in a horizontally scrolling wrapper; its first row is the header when the
/// second is a rule (`|---|:---:|`).
fn table(rows: &[Line]) -> String {
    let cells = |line: &Line| -> Vec<String> {
        let Line::Row(r) = line else {
            return Vec::new();
        };
        let r = r.strip_prefix('|').unwrap_or(r);
        let r = r.strip_suffix('|').unwrap_or(r);
        r.split('|').map(|c| c.trim().to_string()).collect()
    };
    let rule = |line: &Line| {
        cells(line).iter().all(|c| {
            let dashes = c.trim_matches(':');
            !dashes.is_empty() && dashes.chars().all(|ch| ch == '-')
        })
    };
    let mut html = String::from("<div class=\"table-wrap\">\n<table>\n");
    let body = if rows.len() >= 2 && rule(&rows[1]) {
        html.push_str("<thead>\n<tr>");
        for c in cells(&rows[0]) {
            let _ = write!(html, "<th scope=\"col\">{}</th>", escape(&c));
        }
        html.push_str("</tr>\n</thead>\n");
        &rows[2..]
    } else {
        rows
    };
    html.push_str("<tbody>\n");
    for row in body {
        html.push_str("<tr>");
        for c in cells(row) {
            let _ = write!(html, "<td>{}</td>", escape(&c));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody>\n</table>\n</div>\n");
    html
}

/// The MIME type and size of an encoded PNG or JPEG image; `None` for anything else, or one
/// whose header does not decode.
fn image_kind(bytes: &[u8]) -> Option<(&'static str, u32, u32)> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mime = match reader.format()? {
        image::ImageFormat::Png => "image/png",
        image::ImageFormat::Jpeg => "image/jpeg",
        _ => return None,
    };
    let (w, h) = reader.into_dimensions().ok()?;
    Some((mime, w, h))
}

/// `text` with `&`, `<`, `>` and both quotes escaped: safe in an element and in an attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A heading's id: its ASCII letters and digits, lowercased, other runs as one `-`.
fn slug(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-');
    if s.is_empty() {
        "section".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = Doc {
            dir: dir.path(),
            ids: HashSet::new(),
            nav: Vec::new(),
        };
        doc.markdown(text)
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<b a="1">&'</b>"#),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn headings_paragraphs_and_lists() {
        let html = md("## Label efficiency\n\nEncoder: x.\nsecond line\n\n- a: <1>\n- b\nafter\n");
        assert_eq!(
            html,
            "<h2 id=\"label-efficiency\">Label efficiency</h2>\n\
             <p>Encoder: x. second line</p>\n\
             <ul>\n<li>a: &lt;1&gt;</li>\n<li>b</li>\n</ul>\n<p>after</p>\n"
        );
        // Seven hashes, or none followed by a space, are text.
        assert_eq!(md("####### x"), "<p>####### x</p>\n");
        assert_eq!(md("#x"), "<p>#x</p>\n");
    }

    #[test]
    fn pipe_tables_have_a_header_when_a_rule_follows_it() {
        let html = md("| run | acc |\n|---|:---:|\n| a & b | 1% |\n| knn | |\n");
        assert_eq!(
            html,
            "<div class=\"table-wrap\">\n<table>\n<thead>\n<tr><th scope=\"col\">run</th>\
             <th scope=\"col\">acc</th></tr>\n</thead>\n<tbody>\n<tr><td>a &amp; b</td>\
             <td>1%</td></tr>\n<tr><td>knn</td><td></td></tr>\n</tbody>\n</table>\n</div>\n"
        );
        let plain = md("| a | b |\n| c | d |");
        assert!(
            !plain.contains("<thead>") && plain.matches("<tr>").count() == 2,
            "{plain}"
        );
    }

    #[test]
    fn images_of_missing_files_and_non_files_are_left_out() {
        for line in [
            "![x](missing.png)",
            "![x](https://example.invalid/a.png)",
            "![x](../a.png)",
            "![x](/etc/hostname)",
            "![x]()",
        ] {
            assert_eq!(md(line), "", "{line}");
        }
        // An image inside a paragraph is text, never a request.
        assert_eq!(md("see ![x](a.png) here"), "<p>see ![x](a.png) here</p>\n");
    }

    #[test]
    fn slugs_and_ids_are_unique() {
        assert_eq!(slug("Set-up"), "set-up");
        assert_eq!(slug("  Label efficiency (1%) "), "label-efficiency-1");
        assert_eq!(slug("±"), "section");
        let html = md("## Results\n## Results\n");
        assert!(
            html.contains("id=\"results\"") && html.contains("id=\"results-2\""),
            "{html}"
        );
    }
}
