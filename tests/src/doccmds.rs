//! The `darkwatch-collector` and `darkwatch-agent` commands shown in the
//! docs, read out of Markdown so that a test can run them (the docs test in
//! `tests/it/docs.rs`): examples that nobody runs rot silently. Pure text
//! handling here; running them is the test's.
//!
//! A command is a line of a code block (fenced, or indented by four spaces)
//! that starts with one of the two binaries (after an optional `$ ` prompt),
//! joined with its `\` continuation lines. Its words are split as a shell
//! would (`shlex`), after a trailing `# comment`; a trailing `&` and a
//! `> FILE` redirection are taken apart.

/// One command as the docs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocCommand {
    /// `README.md:40`.
    pub at: String,
    /// The command line, continuations joined, comment removed.
    pub text: String,
}

/// What a shell would run for a [`DocCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The binary and its arguments, unexpanded (`$DB` stays).
    pub argv: Vec<String>,
    /// `> FILE`: stdout goes there.
    pub stdout_to: Option<String>,
    /// A trailing `&`: a server left running.
    pub background: bool,
    /// A synopsis (`[--from T]`, `csv|jsonl`): not runnable as it stands.
    pub synopsis: bool,
}

const BINARIES: [&str; 2] = ["darkwatch-collector", "darkwatch-agent"];

/// The commands of `markdown` (a file named `file`), in order.
pub fn commands(file: &str, markdown: &str) -> Vec<DocCommand> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut fenced = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            i += 1;
            continue;
        }
        let text = line.trim();
        let text = text.strip_prefix("$ ").unwrap_or(text);
        let is_command = BINARIES
            .iter()
            .any(|b| text == *b || text.starts_with(&format!("{b} ")));
        if (fenced || line.starts_with("    ")) && is_command {
            let at = format!("{file}:{}", i + 1);
            let mut joined = text.to_string();
            while let Some(head) = joined.strip_suffix('\\') {
                let Some(next) = lines.get(i + 1) else { break };
                joined = format!("{} {}", head.trim_end(), next.trim());
                i += 1;
            }
            out.push(DocCommand {
                at,
                text: strip_comment(&joined).trim().to_string(),
            });
        }
        i += 1;
    }
    out
}

/// `text` up to a `#` that starts a word outside quotes.
fn strip_comment(text: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &text[..i],
            _ => {}
        }
        prev = c;
    }
    text
}

/// Splits a command as a shell would; `None` for unbalanced quotes.
pub fn invocation(text: &str) -> Option<Invocation> {
    let mut words = shlex::split(text)?;
    let background = words.last().is_some_and(|w| w == "&");
    if background {
        words.pop();
    }
    let mut stdout_to = None;
    if let Some(p) = words.iter().position(|w| w == ">") {
        stdout_to = words.get(p + 1).cloned();
        words.truncate(p);
    }
    let synopsis = words
        .iter()
        .any(|w| w.starts_with('[') || w.ends_with(']') || (w.contains('|') && !w.contains('=')));
    Some(Invocation {
        argv: words,
        stdout_to,
        background,
        synopsis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_from_code_blocks_with_their_continuations() {
        let md = "\
Run `darkwatch-collector status` (prose, not a command).

    darkwatch-collector --db \"$DB\" campaign add kp --country KP \\
        --interval 600   # a comment
    cargo build

```sh
$ darkwatch-agent trace --json 192.0.2.1 > t.json
```
darkwatch-agent outside a block
";
        let c = commands("x.md", md);
        assert_eq!(
            c,
            [
                DocCommand {
                    at: "x.md:3".into(),
                    text: "darkwatch-collector --db \"$DB\" campaign add kp --country KP --interval 600"
                        .into()
                },
                DocCommand {
                    at: "x.md:8".into(),
                    text: "darkwatch-agent trace --json 192.0.2.1 > t.json".into()
                },
            ]
        );
    }

    #[test]
    fn invocations_split_as_a_shell_would() {
        let i = invocation("darkwatch-collector --db \"$DB\" agents add 'a b' > t.token").unwrap();
        assert_eq!(
            i.argv,
            ["darkwatch-collector", "--db", "$DB", "agents", "add", "a b"]
        );
        assert_eq!(i.stdout_to.as_deref(), Some("t.token"));
        assert!(!i.background && !i.synopsis);
        let i = invocation("darkwatch-collector serve --db x &").unwrap();
        assert!(i.background);
        assert_eq!(i.argv.len(), 4);
        assert!(
            invocation("darkwatch-collector signals [--from T] --format csv|jsonl")
                .unwrap()
                .synopsis
        );
        assert!(invocation("darkwatch-collector \"open").is_none());
        assert_eq!(strip_comment("a '# not' b # yes"), "a '# not' b ");
        assert_eq!(strip_comment("a#b"), "a#b");
    }
}
