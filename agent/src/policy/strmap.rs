//! Maps byte offsets in a TOML string's value back to the file, so that errors inside a rule
//! expression point at the right line and column even across escapes and multi-line strings.

/// For a string token as written in the file (quotes included), the offset in the token of
/// each byte of the decoded value, plus one entry for the end. `None` if the token is not a
/// string this decoder understands or decodes to something other than `value` (callers then
/// point at the token's start).
pub(super) fn value_offsets(token: &str, value: &str) -> Option<Vec<usize>> {
    let (delim, basic) = if token.starts_with("\"\"\"") {
        (3, true)
    } else if token.starts_with("'''") {
        (3, false)
    } else if token.starts_with('"') {
        (1, true)
    } else if token.starts_with('\'') {
        (1, false)
    } else {
        return None;
    };
    let end = token.len().checked_sub(delim)?;
    let mut i = delim;
    // A newline right after a multi-line opening delimiter is not part of the value.
    if delim == 3 {
        if token[i..].starts_with("\r\n") {
            i += 2;
        } else if token[i..].starts_with('\n') {
            i += 1;
        }
    }
    let bytes = token.as_bytes();
    let mut decoded = String::with_capacity(value.len());
    let mut offsets = Vec::with_capacity(value.len() + 1);
    while i < end {
        let c = token[i..].chars().next()?;
        if !basic || c != '\\' {
            decoded.push(c);
            offsets.extend(i..i + c.len_utf8());
            i += c.len_utf8();
            continue;
        }
        let esc = *bytes.get(i + 1)?;
        let (ch, len) = match esc {
            b'b' => ('\u{8}', 2),
            b't' => ('\t', 2),
            b'n' => ('\n', 2),
            b'f' => ('\u{c}', 2),
            b'r' => ('\r', 2),
            b'e' => ('\u{1b}', 2),
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'x' | b'u' | b'U' => {
                let digits = match esc {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = token.get(i + 2..i + 2 + digits)?;
                (
                    char::from_u32(u32::from_str_radix(hex, 16).ok()?)?,
                    2 + digits,
                )
            }
            // Line-ending backslash: skip whitespace and newlines.
            b' ' | b'\t' | b'\r' | b'\n' if delim == 3 => {
                i += 1;
                while i < end && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
                continue;
            }
            _ => return None,
        };
        decoded.push(ch);
        offsets.extend(std::iter::repeat_n(i, ch.len_utf8()));
        i += len;
    }
    offsets.push(end);
    (decoded == value).then_some(offsets)
}

#[cfg(test)]
mod tests {
    use super::value_offsets;

    #[test]
    fn plain_escaped_and_multiline_strings_map_back() {
        let o = value_offsets(r#""ab""#, "ab").unwrap();
        assert_eq!(o, vec![1, 2, 3]);
        // `\"` is one byte of the value but two in the file.
        let o = value_offsets(r#""a\"b""#, "a\"b").unwrap();
        assert_eq!(o, vec![1, 2, 4, 5]);
        let o = value_offsets("'''\nx\ny'''", "x\ny").unwrap();
        assert_eq!(o, vec![4, 5, 6, 7]);
        let o = value_offsets("\"\"\"a \\\n   b\"\"\"", "a b").unwrap();
        assert_eq!(o, vec![3, 4, 10, 11]);
        let o = value_offsets(r#""\u00e9x""#, "éx").unwrap();
        assert_eq!(o, vec![1, 1, 7, 8]);
        assert!(value_offsets(r#""ab""#, "other").is_none());
        assert!(value_offsets("12", "12").is_none());
    }
}
