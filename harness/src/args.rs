//! The QEMU launch definition (`qemu-config/irqstorm.args`).
//!
//! Format, one QEMU option per line:
//!
//! ```text
//! # comment
//! -machine q35                      <- option and its value (rest of the line)
//! -nodefaults                       <- option without a value
//! -append ${CMDLINE}                <- ${NAME} is replaced; the value stays ONE argument
//! [device] -chardev socket,...      <- only when tag "device" is enabled
//! ```

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("line {line}: {msg}")]
    Syntax { line: usize, msg: String },
    #[error("line {line}: variable ${{{name}}} is not set")]
    Unset { line: usize, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TLine {
    line: usize,
    tag: Option<String>,
    option: String,
    value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    lines: Vec<TLine>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, ArgsError> {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let mut s = raw.trim();
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let mut tag = None;
            if let Some(rest) = s.strip_prefix('[') {
                let end = rest.find(']').ok_or_else(|| ArgsError::Syntax {
                    line,
                    msg: "unterminated [tag]".into(),
                })?;
                let t = rest[..end].trim();
                if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                    return Err(ArgsError::Syntax {
                        line,
                        msg: format!("bad tag [{t}]"),
                    });
                }
                tag = Some(t.to_string());
                s = rest[end + 1..].trim();
            }
            if !s.starts_with('-') {
                return Err(ArgsError::Syntax {
                    line,
                    msg: format!("expected a QEMU option starting with '-', got {s:?}"),
                });
            }
            let (option, value) = match s.find(char::is_whitespace) {
                Some(p) => (s[..p].to_string(), Some(s[p..].trim().to_string())),
                None => (s.to_string(), None),
            };
            // Check ${...} syntax now so errors show up before any boot.
            for part in std::iter::once(&option).chain(value.iter()) {
                vars_in(part).map_err(|msg| ArgsError::Syntax { line, msg })?;
            }
            lines.push(TLine {
                line,
                tag,
                option,
                value,
            });
        }
        Ok(Self { lines })
    }

    /// All variables used (for documentation and checks).
    pub fn variables(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for l in &self.lines {
            for part in std::iter::once(&l.option).chain(l.value.iter()) {
                out.extend(vars_in(part).unwrap_or_default());
            }
        }
        out
    }

    /// Expand into an argument vector. Lines with a tag not in `tags` are dropped.
    pub fn expand(
        &self,
        vars: &BTreeMap<String, String>,
        tags: &[&str],
    ) -> Result<Vec<String>, ArgsError> {
        let mut out = Vec::new();
        for l in &self.lines {
            if let Some(t) = &l.tag {
                if !tags.contains(&t.as_str()) {
                    continue;
                }
            }
            out.push(subst(&l.option, vars, l.line)?);
            if let Some(v) = &l.value {
                out.push(subst(v, vars, l.line)?);
            }
        }
        Ok(out)
    }
}

fn vars_in(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(p) = rest.find("${") {
        let after = &rest[p + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated ${{ in {s:?}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad variable name {name:?}"));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

fn subst(s: &str, vars: &BTreeMap<String, String>, line: usize) -> Result<String, ArgsError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(p) = rest.find("${") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let end = after.find('}').expect("checked at parse time");
        let name = &after[..end];
        let v = vars.get(name).ok_or_else(|| ArgsError::Unset {
            line,
            name: name.to_string(),
        })?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Quote an argument vector for a POSIX shell (for printing a hand-runnable command).
pub fn shell_quote(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const T: &str = "\
# launch
-machine q35
-nodefaults

-append ${CMDLINE}
-m ${MEM}M
[device] -chardev socket,id=irqstorm0,path=${SOCK}
";

    #[test]
    fn expands_and_keeps_values_whole() {
        let t = Template::parse(T).unwrap();
        let v = vars(&[("CMDLINE", "console=ttyS0 panic=-1"), ("MEM", "512")]);
        let a = t.expand(&v, &[]).unwrap();
        assert_eq!(
            a,
            vec![
                "-machine",
                "q35",
                "-nodefaults",
                "-append",
                "console=ttyS0 panic=-1",
                "-m",
                "512M"
            ]
        );
    }

    #[test]
    fn tags_select_lines() {
        let t = Template::parse(T).unwrap();
        let v = vars(&[("CMDLINE", "x"), ("MEM", "1"), ("SOCK", "/tmp/s")]);
        let a = t.expand(&v, &["device"]).unwrap();
        assert_eq!(
            a[a.len() - 2..],
            ["-chardev", "socket,id=irqstorm0,path=/tmp/s"]
        );
    }

    #[test]
    fn unset_variable_is_an_error_only_when_used() {
        let t = Template::parse(T).unwrap();
        let v = vars(&[("CMDLINE", "x")]);
        assert_eq!(
            t.expand(&v, &[]),
            Err(ArgsError::Unset {
                line: 6,
                name: "MEM".into()
            })
        );
        let v = vars(&[("CMDLINE", "x"), ("MEM", "1")]);
        assert!(t.expand(&v, &[]).is_ok(), "SOCK only needed with [device]");
        assert_eq!(
            t.variables().into_iter().collect::<Vec<_>>(),
            vec!["CMDLINE", "MEM", "SOCK"]
        );
    }

    #[test]
    fn syntax_errors() {
        assert!(matches!(
            Template::parse("machine q35"),
            Err(ArgsError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            Template::parse("\n-m ${MEM"),
            Err(ArgsError::Syntax { line: 2, .. })
        ));
        assert!(matches!(
            Template::parse("[dev -m 1"),
            Err(ArgsError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn quoting() {
        let a: Vec<String> = ["-append", "console=ttyS0 x='y'", "-m"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(shell_quote(&a), "-append 'console=ttyS0 x='\\''y'\\''' -m");
    }
}
