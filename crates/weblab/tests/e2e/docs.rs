//! The documents a learner reads agree with what the program prints: every
//! concept id an explanation can print has a row in the README's table,
//! and the concept guide takes every id in turn.

/// The `Cnn` ids in `text`, in order of first appearance, without repeats.
fn ids(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out: Vec<String> = Vec::new();
    for i in 0..b.len().saturating_sub(2) {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let after = b.get(i + 3).is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary
            && after
            && b[i] == b'C'
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
        {
            let id = text[i..i + 3].to_string();
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

fn read(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
    std::fs::read_to_string(format!("{root}{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_concept_id_the_explanations_print_has_a_row_in_the_readme() {
    let readme = read("README.md");
    let rows: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| C"))
        .map(|rest| format!("C{}", &rest[..2]))
        .collect();
    assert!(rows.len() > 30, "the README's concept table is missing");
    let printed = ids(&read("crates/trace/src/explain.rs"));
    assert!(printed.len() > 15);
    let missing: Vec<&String> = printed.iter().filter(|id| !rows.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "printed by the explanations but not in the README's table: {missing:?}"
    );
}

#[test]
fn the_concept_guide_takes_every_id_in_order() {
    let guide = read("docs/concepts.md");
    let entries: Vec<String> = guide
        .lines()
        .filter_map(|l| l.strip_prefix("**C"))
        .map(|rest| format!("C{}", &rest[..2]))
        .collect();
    let all: Vec<String> = (1..=53).map(|n| format!("C{n:02}")).collect();
    assert_eq!(entries, all);
    // A README row is a concept the guide does not call "not yet" outright.
    let readme = read("README.md");
    for line in guide.lines().filter(|l| l.starts_with("**C")) {
        let id = &line[2..5];
        if line.contains("**Not yet**") && !line.contains("Partly") {
            assert!(
                !readme.lines().any(|l| l.starts_with(&format!("| {id} "))),
                "{id} is in the README's table but the guide says it is not done"
            );
        }
    }
}
