//! A small SVG document writer: the few elements simdnet's pictures need, with text escaped and
//! numbers written in a fixed, short form so the files are compact and deterministic.

use std::fmt::Write;

/// Escapes `&`, `<`, `>`, `"` and `'` for use in SVG text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A number with at most two decimals and no trailing zeros (`12`, `3.5`, `0.25`); non-finite
/// values become 0 so a document is always well-formed.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Horizontal anchoring of a text element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// An SVG document under construction. Coordinates are in pixels, origin top left.
pub struct Svg {
    body: String,
    width: f64,
    height: f64,
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Svg {
        Svg {
            body: String::new(),
            width,
            height,
        }
    }

    /// A line segment.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"/>"#,
            num(x1),
            num(y1),
            num(x2),
            num(y2),
            escape(stroke),
            num(width)
        );
    }

    /// A polyline through `points`; nothing for fewer than two points.
    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64, class: &str) {
        if points.len() < 2 {
            return;
        }
        let pts: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{},{}", num(x), num(y)))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polyline class="{}" fill="none" stroke="{}" stroke-width="{}" points="{}"/>"#,
            escape(class),
            escape(stroke),
            num(width),
            pts.join(" ")
        );
    }

    /// A filled circle (a marker on a curve).
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, fill: &str, class: &str) {
        let _ = writeln!(
            self.body,
            r#"<circle class="{}" cx="{}" cy="{}" r="{}" fill="{}"/>"#,
            escape(class),
            num(cx),
            num(cy),
            num(r),
            escape(fill)
        );
    }

    /// A rectangle; `title`, when given, becomes a tooltip.
    #[allow(clippy::too_many_arguments)]
    pub fn rect(
        &mut self,
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: &str,
        stroke: Option<&str>,
        title: Option<&str>,
    ) {
        let stroke = stroke
            .map(|s| format!(r#" stroke="{}""#, escape(s)))
            .unwrap_or_default();
        let open = format!(
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"{stroke}"#,
            num(x),
            num(y),
            num(w),
            num(h),
            escape(fill)
        );
        match title {
            Some(t) => {
                let _ = writeln!(self.body, "{open}><title>{}</title></rect>", escape(t));
            }
            None => {
                let _ = writeln!(self.body, "{open}/>");
            }
        }
    }

    /// A text element; `rotate` turns it by that many degrees about its anchor point.
    #[allow(clippy::too_many_arguments)]
    pub fn text(
        &mut self,
        x: f64,
        y: f64,
        size: f64,
        anchor: Anchor,
        rotate: f64,
        fill: &str,
        content: &str,
    ) {
        let transform = if rotate != 0.0 {
            format!(
                r#" transform="rotate({} {} {})""#,
                num(rotate),
                num(x),
                num(y)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" font-size="{}" text-anchor="{}" fill="{}"{transform}>{}</text>"#,
            num(x),
            num(y),
            num(size),
            anchor.name(),
            escape(fill),
            escape(content)
        );
    }

    /// An embedded raster image (`data:` URI), drawn without smoothing.
    pub fn image(&mut self, x: f64, y: f64, w: f64, h: f64, data_uri: &str) {
        let _ = writeln!(
            self.body,
            r#"<image x="{}" y="{}" width="{}" height="{}" style="image-rendering:pixelated" href="{}"/>"#,
            num(x),
            num(y),
            num(w),
            num(h),
            escape(data_uri)
        );
    }

    /// The finished document, with a white background and a title.
    pub fn finish(self, title: &str) -> String {
        format!(
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                "\n",
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#,
                "\n<title>{t}</title>\n",
                r#"<rect width="100%" height="100%" fill="white"/>"#,
                "\n{body}</svg>\n"
            ),
            w = num(self.width),
            h = num(self.height),
            t = escape(title),
            body = self.body
        )
    }
}

/// Checks what this writer's documents must satisfy to be well-formed XML: every tag closed in
/// order, every attribute value quoted, no stray `<` or `&` in text. (A check of the documents
/// written here, not a general XML parser.)
pub fn well_formed(doc: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = doc;
    loop {
        let (text, tail) = match rest.find('<') {
            Some(start) => (&rest[..start], Some(&rest[start + 1..])),
            None => (rest, None),
        };
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            let known = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"];
            if !known.iter().any(|e| entity.starts_with(e)) {
                return Err(format!(
                    "a bare '&' in text: {:?}",
                    &entity[..entity.len().min(20)]
                ));
            }
        }
        let Some(tail) = tail else { break };
        let end = tail.find('>').ok_or("an unclosed '<'")?;
        let tag = &tail[..end];
        rest = &tail[end + 1..];
        if tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(o) if o == name => continue,
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        }
        if tag.matches('"').count() % 2 != 0 {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        let name = tag
            .split_whitespace()
            .next()
            .ok_or("an empty tag")?
            .trim_end_matches('/');
        if !tag.ends_with('/') {
            open.push(name);
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed elements: {open:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_are_short() {
        let mut s = Svg::new(100.0, 50.0);
        s.text(
            1.0,
            2.5,
            10.0,
            Anchor::Middle,
            0.0,
            "black",
            "T-shirt <&> \"top\"",
        );
        s.line(0.0, 0.333, f64::NAN, -0.0, "red", 1.0);
        let doc = s.finish("a & b");
        assert!(doc.contains("T-shirt &lt;&amp;&gt; &quot;top&quot;"));
        assert!(doc.contains("<title>a &amp; b</title>"));
        assert!(doc.contains(r#"y1="0.33""#));
        assert!(doc.contains(r#"x2="0" y2="0""#));
        assert!(doc.contains(r#"y="2.5""#));
        assert!(doc.ends_with("</svg>\n"));
        assert_eq!(well_formed(&doc), Ok(()));
        assert!(well_formed("<svg><g></svg>").is_err());
        assert!(well_formed("<svg>a & b</svg>").is_err());
        assert!(well_formed("<svg x=\"1></svg>").is_err());
        assert!(well_formed("<svg>").is_err());
    }
}
