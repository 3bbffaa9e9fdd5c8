//! Layout of syscall tracepoint records, read from tracefs `format` files rather than assumed.
use std::path::Path;

/// Offset of field `name` in a tracefs `format` text (`field:... name;\toffset:N;...`).
pub(crate) fn field_offset(format: &str, name: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let field = line.strip_prefix("field:")?.split(';').next()?;
        let field_name = field.split_whitespace().last()?.trim_start_matches('*');
        if field_name != name {
            return None;
        }
        line.split(';')
            .find_map(|part| part.trim().strip_prefix("offset:"))
            .and_then(|n| n.parse().ok())
    })
}

/// (offset of the first argument of sys_enter_openat, offset of `ret` of sys_exit_openat);
/// None when tracefs is not readable.
pub(crate) fn syscall_layout(tracefs: &Path) -> Option<(u32, u32)> {
    let events = tracefs.join("events/syscalls");
    let enter = std::fs::read_to_string(events.join("sys_enter_openat/format")).ok()?;
    let exit = std::fs::read_to_string(events.join("sys_exit_openat/format")).ok()?;
    Some((field_offset(&enter, "dfd")?, field_offset(&exit, "ret")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTER: &str = "name: sys_enter_openat
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
";

    #[test]
    fn reads_field_offsets() {
        assert_eq!(field_offset(ENTER, "dfd"), Some(16));
        assert_eq!(field_offset(ENTER, "filename"), Some(24));
        assert_eq!(field_offset(ENTER, "__syscall_nr"), Some(8));
        assert_eq!(field_offset(ENTER, "missing"), None);
    }
}
