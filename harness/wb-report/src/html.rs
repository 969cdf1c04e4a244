//! The browsable form of a report: `index.html` beside `tables.md`, and
//! `reports/index.html` over every experiment.
//!
//! The page is the report's Markdown rendered to HTML — the same text, tables and
//! figures, so the two never disagree — with a table of contents, the figures shown
//! inline (the SVG beside each PNG, as a local file), the environment manifests and a
//! small inline script that makes tables sortable by a click on a header. Everything is
//! in the page or next to it: no network fetch, no CDN, readable without JavaScript.
//!
//! The Markdown is the subset the report writes: headings, paragraphs, pipe tables,
//! `-` and `1.` lists, images, links, `**bold**` and `code` spans.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Styles and the sorting script, inline in every page.
const HEAD: &str = r#"<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 1.2em 3em;color:#1b1b1b}
h1{font-size:1.6em;margin:.8em 0 .3em}h2{font-size:1.3em;margin-top:1.8em;border-bottom:1px solid #ddd}h3{font-size:1.1em}
nav{background:#f6f6f6;padding:.5em 1em;border-radius:6px;font-size:.92em}nav a{margin-right:1em}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em;display:block;overflow-x:auto}
th,td{border:1px solid #d6d6d6;padding:.25em .5em;text-align:left;white-space:nowrap}
th{background:#f0f0f0;position:sticky;top:0}th.sortable{cursor:pointer}th.sortable:after{content:" \2195";color:#999}
tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.88em;color:#555}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}details{margin:.5em 0}pre{overflow-x:auto;background:#f7f7f7;padding:.6em}
</style>
<script>
// Sort a table by the clicked header: numerically when every non-empty cell starts
// with a number, else as text; a second click reverses.
document.addEventListener("DOMContentLoaded",function(){
 document.querySelectorAll("table").forEach(function(t){
  var head=t.tHead,body=t.tBodies[0];if(!head||!body)return;
  Array.prototype.forEach.call(head.rows[0].cells,function(th,i){
   th.className="sortable";
   th.addEventListener("click",function(){
    var rows=Array.prototype.slice.call(body.rows),dir=th.dataset.dir==="asc"?-1:1;th.dataset.dir=dir>0?"asc":"desc";
    var num=function(r){var m=(r.cells[i]?r.cells[i].textContent:"").replace("\u2212","-").match(/^\s*[+-]?\d+(\.\d+)?(e[+-]?\d+)?/i);return m?parseFloat(m[0]):null};
    var numeric=rows.every(function(r){var c=r.cells[i];return !c||c.textContent.trim()===""||c.textContent.trim()==="-"||num(r)!==null});
    rows.sort(function(a,b){if(numeric){var x=num(a),y=num(b);if(x===null)return 1;if(y===null)return -1;return dir*(x-y)}
     return dir*a.cells[i].textContent.localeCompare(b.cells[i].textContent)});
    rows.forEach(function(r){body.appendChild(r)});
   });
  });
 });
});
</script>"#;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Inline Markdown: code spans, links, bold (the rest escaped).
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    for (i, part) in s.split('`').enumerate() {
        if i > 0 {
            code = !code;
        }
        if code {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&links_and_bold(part));
        }
    }
    out
}

fn links_and_bold(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open..];
        let parsed = after.find("](").and_then(|mid| {
            let close = after[mid + 2..].find(')')? + mid + 2;
            Some((&after[1..mid], &after[mid + 2..close], close))
        });
        match parsed {
            Some((text, href, close)) => {
                out.push_str(&bold(&esc(&rest[..open])));
                let _ = write!(out, "<a href=\"{}\">{}</a>", esc(href), bold(&esc(text)));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&bold(&esc(&rest[..open + 1])));
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(&bold(&esc(rest)));
    out
}

fn bold(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split("**").enumerate() {
        if i > 0 {
            out.push_str(if i % 2 == 1 { "<strong>" } else { "</strong>" });
        }
        out.push_str(part);
    }
    if s.matches("**").count() % 2 == 1 {
        out.push_str("</strong>");
    }
    out
}

/// Cells of a pipe-table row (`\|` stays a literal bar).
fn cells(line: &str) -> Vec<String> {
    let l = line.trim().trim_start_matches('|').trim_end_matches('|');
    l.replace("\\|", "\u{0}")
        .split('|')
        .map(|c| c.trim().replace('\u{0}', "|"))
        .collect()
}

/// An anchor id from heading text.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// A figure: the SVG beside a PNG when there is one (vector, sharp at any zoom).
fn figure(alt: &str, src: &str, dir: &Path) -> String {
    let svg = Path::new(src).with_extension("svg");
    let shown = if src.ends_with(".png") && dir.join(&svg).is_file() {
        svg.to_string_lossy().into_owned()
    } else {
        src.to_string()
    };
    format!(
        "<figure><a href=\"{s}\"><img src=\"{s}\" alt=\"{a}\" loading=\"lazy\"></a>\
         <figcaption>{a}</figcaption></figure>\n",
        s = esc(&shown),
        a = esc(alt)
    )
}

/// `md` with its `## Comparison` section (the cross-method leaderboard), when it has
/// one, moved in front of the others: the leaderboard is what a reader comes for.
fn leaderboard_first(md: &str) -> String {
    let mut sections: Vec<String> = vec![String::new()];
    for line in md.lines() {
        if line.starts_with("## ") {
            sections.push(String::new());
        }
        let last = sections.last_mut().expect("one section at least");
        last.push_str(line);
        last.push('\n');
    }
    let Some(pos) = sections
        .iter()
        .skip(1)
        .position(|s| s.starts_with("## Comparison"))
    else {
        return md.to_string();
    };
    let board = sections.remove(pos + 1);
    sections.insert(1, board);
    sections.concat()
}

/// Renders the report Markdown `md` (whose figures live in `dir`) as one HTML page,
/// with `extra` HTML (the manifests) at the end. Returns the page and its title.
pub fn page(md: &str, dir: &Path, extra: &str) -> (String, String) {
    let md = leaderboard_first(md);
    let mut body = String::new();
    let mut toc: Vec<(String, String)> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut title = String::from("weightbench report");
    let mut para: Vec<&str> = Vec::new();
    let mut list: Option<&str> = None;
    let lines: Vec<&str> = md.lines().collect();
    let flush_para = |para: &mut Vec<&str>, body: &mut String| {
        if !para.is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(&para.join(" ")));
            para.clear();
        }
    };
    let close_list = |list: &mut Option<&str>, body: &mut String| {
        if let Some(tag) = list.take() {
            let _ = writeln!(body, "</{tag}>");
        }
    };
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        let numbered = t
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if t.is_empty() {
            flush_para(&mut para, &mut body);
            close_list(&mut list, &mut body);
        } else if let Some(h) = t.strip_prefix('#') {
            flush_para(&mut para, &mut body);
            close_list(&mut list, &mut body);
            let level = 1 + h.chars().take_while(|c| *c == '#').count();
            let text = h.trim_start_matches('#').trim();
            // Headings repeat across sections (one per model): ids stay unique.
            let mut id = slug(text);
            let mut n = 1;
            while ids.contains(&id) {
                n += 1;
                id = format!("{}-{n}", slug(text));
            }
            ids.push(id.clone());
            if level == 1 && toc.is_empty() && title == "weightbench report" {
                title = text.replace('`', "");
            }
            if level == 2 {
                toc.push((id.clone(), text.replace('`', "")));
            }
            let _ = writeln!(body, "<h{level} id=\"{id}\">{}</h{level}>", inline(text));
        } else if t.starts_with('|') {
            flush_para(&mut para, &mut body);
            close_list(&mut list, &mut body);
            let mut rows: Vec<Vec<String>> = Vec::new();
            while i < lines.len() && lines[i].trim().starts_with('|') {
                rows.push(cells(lines[i]));
                i += 1;
            }
            body.push_str(&table(&rows));
            continue;
        } else if let Some(img) = t.strip_prefix("![") {
            flush_para(&mut para, &mut body);
            match img.split_once("](") {
                Some((alt, src)) => body.push_str(&figure(alt, src.trim_end_matches(')'), dir)),
                None => para.push(line),
            }
        } else if t.starts_with("- ") || numbered {
            flush_para(&mut para, &mut body);
            let tag = if numbered { "ol" } else { "ul" };
            if list != Some(tag) {
                close_list(&mut list, &mut body);
                let _ = writeln!(body, "<{tag}>");
                list = Some(tag);
            }
            let item = if numbered {
                t.split_once(". ").map_or(t, |x| x.1)
            } else {
                &t[2..]
            };
            let _ = writeln!(body, "<li>{}</li>", inline(item));
        } else if list.is_some() && line.starts_with("  ") {
            // A continuation line of a list item.
            let _ = writeln!(body, "{}", inline(t));
        } else {
            close_list(&mut list, &mut body);
            para.push(t);
        }
        i += 1;
    }
    flush_para(&mut para, &mut body);
    close_list(&mut list, &mut body);
    let nav = if toc.len() > 1 {
        let links: String = toc
            .iter()
            .map(|(id, t)| format!("<a href=\"#{id}\">{}</a>", esc(t)))
            .collect();
        format!("<nav><a href=\"../index.html\">all reports</a>{links}</nav>\n")
    } else {
        "<nav><a href=\"../index.html\">all reports</a></nav>\n".to_string()
    };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<title>{}</title>\n{HEAD}\n</head>\n<body>\n{nav}{body}{extra}</body>\n</html>\n",
        esc(&title)
    );
    (html, title)
}

/// A pipe table (header, separator, body rows) as HTML.
fn table(rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n");
    let is_sep = |r: &Vec<String>| {
        r.iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':')))
    };
    let (head, body) = match rows {
        [h, sep, rest @ ..] if is_sep(sep) => (Some(h), rest),
        _ => (None, rows),
    };
    if let Some(h) = head {
        out.push_str("<thead><tr>");
        for c in h {
            let _ = write!(out, "<th>{}</th>", inline(c));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for r in body {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", inline(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The environment manifests of a results folder, one collapsible block each.
pub fn manifests(results_dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(results_dir.join("manifests"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    if files.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2 id=\"environment\">Environment</h2>\n<p>The machine and software of each run (the <code>manifest_id</code> column of the rows).</p>\n");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let id = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<details><summary>manifest <code>{}</code></summary><pre>{}</pre></details>",
            esc(&id),
            esc(&text)
        );
    }
    out
}

/// `reports/index.html`: every experiment with an `index.html` below `reports_dir`,
/// experiments with a cross-method leaderboard first.
pub fn index(reports_dir: &Path) -> String {
    let mut entries: Vec<(bool, String, String)> = std::fs::read_dir(reports_dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("index.html").is_file())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let board = e.path().join("leaderboard.csv").is_file();
                    let md =
                        std::fs::read_to_string(e.path().join("tables.md")).unwrap_or_default();
                    let first = md
                        .lines()
                        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
                        .unwrap_or("")
                        .to_string();
                    (board, name, first)
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut body = String::from("<h1>weightbench reports</h1>\n<table>\n<thead><tr><th>experiment</th><th>leaderboard</th><th>about</th></tr></thead>\n<tbody>\n");
    for (board, name, first) in &entries {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"{n}/index.html\">{n}</a></td><td>{}</td><td>{}</td></tr>",
            if *board { "yes" } else { "" },
            inline(first),
            n = esc(name)
        );
    }
    body.push_str("</tbody>\n</table>\n");
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<title>weightbench reports</title>\n{HEAD}\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leaderboard_comes_first() {
        let md = "# R\nintro\n## a on b\nrows\n## Comparison (x)\nboard\n### a on b\nmore\n## Views\nv\n";
        assert_eq!(
            leaderboard_first(md),
            "# R\nintro\n## Comparison (x)\nboard\n### a on b\nmore\n## a on b\nrows\n## Views\nv\n"
        );
        assert_eq!(leaderboard_first("# R\n## a\n"), "# R\n## a\n");
    }

    #[test]
    fn markdown_subset_renders() {
        let md = "# Report `x`\n\nSome **bold** and `a<b` [link](f.csv).\n\n## Table\n\n| a | b \\| c |\n|---|---|\n| 1 | -2.5 |\n\n- one\n- two\n\n1. first\n2. second\n\n![fig caption](f.png)\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.svg"), "<svg/>").unwrap();
        let (html, title) = page(md, dir.path(), "");
        assert_eq!(title, "Report x");
        for needle in [
            "<h1 id=\"report-x\">Report <code>x</code></h1>",
            "<strong>bold</strong>",
            "<code>a&lt;b</code>",
            "<a href=\"f.csv\">link</a>",
            "<th>b | c</th>",
            "<td>-2.5</td>",
            "<ul>\n<li>one</li>",
            "<ol>\n<li>first</li>",
            "<img src=\"f.svg\" alt=\"fig caption\"",
        ] {
            assert!(html.contains(needle), "missing {needle} in\n{html}");
        }
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no network fetch"
        );
    }
}
