//! The documentation holds together: no `.md` file of the repository
//! contains a merge conflict, every relative link of README.md and docs/
//! reaches a file (and a heading, when it names one), and README.md stays
//! a short front door.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Longest README.md allowed, in lines: the front door stays short; the
/// rest belongs in docs/.
const README_MAX_LINES: usize = 220;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.md` file under `dir`, skipping build output and version control.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if name != "target" && name != ".git" {
                markdown_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// The 1-based line numbers of merge-conflict marker lines in `text`: a
/// line that starts with `<<<<<<< ` or `>>>>>>> ` (or is the bare marker),
/// and `=======` or `|||||||` (diff3's base) only inside a block that a
/// `<<<<<<<` line opened, so that a setext heading's `=======` underline is
/// not taken for one.
fn conflict_markers(text: &str) -> Vec<usize> {
    let is = |line: &str, marker: &str| {
        line == marker
            || line
                .strip_prefix(marker)
                .is_some_and(|rest| rest.starts_with(' '))
    };
    let mut found = Vec::new();
    let mut in_block = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if is(line, "<<<<<<<") {
            in_block = true;
            found.push(i + 1);
        } else if is(line, ">>>>>>>") {
            in_block = false;
            found.push(i + 1);
        } else if in_block && (line == "=======" || is(line, "|||||||")) {
            found.push(i + 1);
        }
    }
    found
}

/// The link targets of `text` (`[text](target)` and `![alt](target)`),
/// outside fenced code blocks and inline code, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans, whose brackets are not links.
        let plain: String = line
            .split('`')
            .enumerate()
            .filter(|(k, _)| k % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            out.push((i + 1, after[..end].trim().to_string()));
            rest = &after[end + 1..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces made `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of the ATX headings of `text` (outside code blocks),
/// with GitHub's `-1`, `-2` suffixes for repeated ones.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let base = slug(&title.replace('`', ""));
        let mut s = base.clone();
        let mut n = 0;
        while seen.contains(&s) {
            n += 1;
            s = format!("{base}-{n}");
        }
        seen.insert(s);
    }
    seen
}

/// What is wrong with the relative links of the file `path` (text `text`).
fn broken_links(path: &Path, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (line, target) in links(text) {
        if target.is_empty()
            || target.contains("://")
            || target.starts_with("mailto:")
            || target.starts_with('<')
        {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (target.as_str(), None),
        };
        let dest = if file.is_empty() {
            path.to_path_buf()
        } else {
            path.parent().unwrap().join(file)
        };
        let at = format!("{}:{line}: ({target})", path.display());
        if !dest.exists() {
            bad.push(format!("{at}: no such file"));
            continue;
        }
        if let Some(a) = anchor.filter(|a| !a.is_empty())
            && dest.extension().is_some_and(|e| e == "md")
        {
            let dest_text = fs::read_to_string(&dest).unwrap();
            if !anchors(&dest_text).contains(a) {
                bad.push(format!("{at}: no heading #{a} in {}", dest.display()));
            }
        }
    }
    bad
}

#[test]
fn no_markdown_file_contains_a_merge_conflict() {
    let mut files = Vec::new();
    markdown_files(root(), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "the walk found no README.md: {files:?}"
    );
    let mut bad = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        for line in conflict_markers(&text) {
            bad.push(format!("{}:{line}", f.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "merge-conflict markers at:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_relative_link_of_readme_and_docs_reaches_its_file_and_heading() {
    let mut files = vec![root().join("README.md")];
    markdown_files(&root().join("docs"), &mut files);
    assert!(files.len() > 1, "no docs/*.md found");
    let mut bad = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        bad.extend(broken_links(f, &text));
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn readme_is_a_short_front_door() {
    let text = fs::read_to_string(root().join("README.md")).unwrap();
    let n = text.lines().count();
    assert!(
        n <= README_MAX_LINES,
        "README.md has {n} lines, more than {README_MAX_LINES}: move sections into docs/"
    );
}

#[test]
fn the_marker_detector_finds_a_conflict_and_spares_setext_headings() {
    let conflict = "intro\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\nend\n";
    assert_eq!(conflict_markers(conflict), vec![2, 4, 6]);
    let diff3 = "<<<<<<< HEAD\na\n||||||| base\nc\n=======\nb\n>>>>>>> branch\n";
    assert_eq!(conflict_markers(diff3), vec![1, 3, 5, 7]);
    // A setext heading and a table are markdown, not a conflict.
    let markdown = "Title\n=======\n\n| a | b |\n|===|===|\n=======\n";
    assert!(conflict_markers(markdown).is_empty());
    // Seven characters inside a word or after text are not markers.
    assert!(conflict_markers("a <<<<<<< b\n>>>>>>>x\n").is_empty());
}

#[test]
fn the_link_checker_finds_a_missing_file_and_a_missing_heading() {
    let here = root().join("docs").join("design.md");
    let text = "[ok](../README.md) [gone](no-such-file.md) [web](https://example.com)\n\
                [anchor](knobs.md#no-such-heading) `[code](not-a-link.md)`\n\
                ```\n[fenced](not-a-link-either.md)\n```\n";
    let bad = broken_links(&here, text);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("no-such-file.md"), "{bad:?}");
    assert!(bad[1].contains("#no-such-heading"), "{bad:?}");
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug("How close to the real curves (--vs-real)"),
        "how-close-to-the-real-curves---vs-real"
    );
    assert_eq!(
        slug("Tuning a running instance: sysctl, ifconfig, stat"),
        "tuning-a-running-instance-sysctl-ifconfig-stat"
    );
    let a = anchors("# A\n## B\n## B\n```\n# not a heading\n```\n");
    assert_eq!(
        a,
        HashSet::from(["a".to_string(), "b".to_string(), "b-1".to_string()])
    );
}
