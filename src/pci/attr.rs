//! Parsers for the text of sysfs and procfs attributes.
//!
//! Pure functions over `&str`, so they can be fuzzed; callers attach the file name to the
//! `&'static str` reason when something does not parse.

/// Trims what the kernel (or a careless fixture) puts around a value: whitespace, the trailing
/// newline, and trailing NUL bytes.
fn trim_attr(text: &str) -> &str {
    text.trim_matches(|c: char| c == '\0' || c.is_ascii_whitespace())
}

/// Parses a hex attribute such as `vendor` (`0x1ae0\n`).
///
/// Accepts an optional single `0x`/`0X` prefix and either case; rejects empty text, a bare
/// prefix, anything that is not a hex digit (including a second `0x`), and more than 8 digits.
pub fn parse_hex_u32(text: &str) -> Result<u32, &'static str> {
    let trimmed = trim_attr(text);
    if trimmed.is_empty() {
        return Err("empty");
    }
    let digits = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed);
    if digits.is_empty() {
        return Err("no hex digits after 0x");
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("not a hex number");
    }
    if digits.len() > 8 {
        return Err("more than 8 hex digits");
    }
    u32::from_str_radix(digits, 16).map_err(|_| "not a hex number")
}

/// Parses a 16-bit hex ID (vendor, device, subsystem IDs).
pub fn parse_hex_u16(text: &str) -> Result<u16, &'static str> {
    u16::try_from(parse_hex_u32(text)?).map_err(|_| "wider than 16 bits")
}

/// Parses a plain decimal number (`numa_node`-style text without the sign rules).
pub fn parse_decimal_u32(text: &str) -> Result<u32, &'static str> {
    let trimmed = trim_attr(text);
    if trimmed.is_empty() {
        return Err("empty");
    }
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal number");
    }
    trimmed.parse().map_err(|_| "number too large")
}

/// Parses `numa_node`: a node number, or `-1` for "no NUMA affinity".
pub fn parse_numa_node(text: &str) -> Result<Option<i32>, &'static str> {
    let trimmed = trim_attr(text);
    if trimmed == "-1" {
        return Ok(None);
    }
    let node = parse_decimal_u32(trimmed).map_err(|_| "not a NUMA node number or -1")?;
    i32::try_from(node)
        .map(Some)
        .map_err(|_| "NUMA node number too large")
}

/// Parses a `dev` attribute: `MAJOR:MINOR` in decimal.
pub fn parse_dev_numbers(text: &str) -> Result<(u32, u32), &'static str> {
    let (major, minor) = trim_attr(text).split_once(':').ok_or("not MAJOR:MINOR")?;
    let major = parse_decimal_u32(major).map_err(|_| "major is not a decimal number")?;
    let minor = parse_decimal_u32(minor).map_err(|_| "minor is not a decimal number")?;
    Ok((major, minor))
}

/// Serialises a 16-bit PCI ID the way sysfs writes it: `"0x1ae0"`.
pub fn serialize_hex_id<S: serde::Serializer>(id: &u16, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{id:#06x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_the_forms_the_kernel_and_tools_write() {
        for text in [
            "0x005e\n", "005e", "0x005E", "0x005e\0", "0X005e", "  0x5e  ", "5e\n\0\0",
        ] {
            assert_eq!(parse_hex_u32(text), Ok(0x5e), "{text:?}");
        }
        assert_eq!(parse_hex_u32("0xffffffff"), Ok(u32::MAX));
    }

    #[test]
    fn hex_rejects_garbage_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("\n", "empty"),
            ("\0", "empty"),
            ("0x", "no hex digits after 0x"),
            ("0x\n", "no hex digits after 0x"),
            ("zz", "not a hex number"),
            ("0x0x5e", "not a hex number"),
            ("0x5e 0x5f", "not a hex number"),
            ("-0x5e", "not a hex number"),
            ("0x123456789", "more than 8 hex digits"),
            ("0x00000000005e", "more than 8 hex digits"),
        ];
        for (text, reason) in cases {
            assert_eq!(parse_hex_u32(text), Err(reason), "{text:?}");
        }
    }

    #[test]
    fn hex_u16_rejects_wide_values() {
        assert_eq!(parse_hex_u16("0x1ae0\n"), Ok(0x1ae0));
        assert_eq!(parse_hex_u16("0x120000"), Err("wider than 16 bits"));
    }

    #[test]
    fn numa_node_minus_one_means_none() {
        assert_eq!(parse_numa_node("-1\n"), Ok(None));
        assert_eq!(parse_numa_node("0\n"), Ok(Some(0)));
        assert_eq!(parse_numa_node("3"), Ok(Some(3)));
        assert!(parse_numa_node("-2").is_err());
        assert!(parse_numa_node("").is_err());
        assert!(parse_numa_node("one").is_err());
    }

    #[test]
    fn dev_numbers_are_decimal_major_minor() {
        assert_eq!(parse_dev_numbers("121:3\n"), Ok((121, 3)));
        assert_eq!(parse_dev_numbers("511:0"), Ok((511, 0)));
        assert_eq!(parse_dev_numbers("121"), Err("not MAJOR:MINOR"));
        assert_eq!(
            parse_dev_numbers("0x79:0"),
            Err("major is not a decimal number")
        );
        assert_eq!(
            parse_dev_numbers("121:"),
            Err("minor is not a decimal number")
        );
    }
}
