//! RFC 4180 CSV cells, neutralised against formula injection.

/// One cell: a value that a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`;
/// cells with commas, quotes or line breaks are quoted, quotes doubled.
pub fn cell(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_cell(&mut out, value);
    out
}

/// [`cell`], written at the end of `out` (no allocation of its own).
pub fn push_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = value.contains([',', '"', '\n', '\r'])
        || (!formula && value.starts_with(' '))
        || value.ends_with(' ');
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    if quoted {
        let mut rest = value;
        while let Some(at) = rest.find('"') {
            out.push_str(&rest[..=at]);
            out.push('"');
            rest = &rest[at + 1..];
        }
        out.push_str(rest);
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// One record, CRLF-terminated.
pub fn row<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = String::new();
    push_row(&mut out, cells);
    out
}

/// [`row`], written at the end of `out`.
pub fn push_row<S: AsRef<str>>(out: &mut String, cells: &[S]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_cell(out, c.as_ref());
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_neutralises() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(
            cell("=HYPERLINK(\"x\",\"y\")"),
            "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\""
        );
        assert_eq!(row(&["a", "b,c"]), "a,\"b,c\"\r\n");
        assert_eq!(cell(" padded"), "\" padded\"");
        assert_eq!(cell("padded "), "\"padded \"");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("- x "), "\"'- x \"");
        assert_eq!(cell("\"\""), "\"\"\"\"\"\"");
        assert_eq!(cell(""), "");
    }

    /// The cell as first written: neutralise, then quote what needs it.
    fn reference(value: &str) -> String {
        let v = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{value}")
        } else {
            value.to_string()
        };
        if v.contains([',', '"', '\n', '\r']) || v.starts_with(' ') || v.ends_with(' ') {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v
        }
    }

    #[test]
    fn writing_in_place_gives_every_cell_as_neutralising_then_quoting_would() {
        let parts = [
            "", " ", "=", "+", "-", "@", "\t", "\r", "\n", ",", "\"", "a", "é", "'",
        ];
        let mut out = String::from("kept");
        for a in parts {
            for b in parts {
                for c in parts {
                    let value = format!("{a}{b}{c}");
                    assert_eq!(cell(&value), reference(&value), "{value:?}");
                    out.truncate(4);
                    push_row(&mut out, &[value.as_str(), "x"]);
                    assert_eq!(out, format!("kept{},x\r\n", reference(&value)));
                }
            }
        }
    }
}
