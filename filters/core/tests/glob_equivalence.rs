//! `gw_core::glob` against `globset` 0.4 (the crate it replaces in the
//! filters, docs/perf-notes.md "Round 3: size and memory"): for random
//! patterns and names over an alphabet rich in glob syntax, the same patterns
//! are refused (with the same message) and the same names match, through both
//! of `globset`'s entry points the ACL used (`GlobSet` for lists,
//! `GlobMatcher` for `agentPattern`).

use globset::{GlobBuilder, GlobSetBuilder};
use gw_core::glob::{Glob, ParsedGlob};
use proptest::prelude::*;

fn reference(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .case_insensitive(false)
        .backslash_escape(true)
        .empty_alternates(false)
        .build()
}

/// Pattern characters: every piece of glob syntax, a separator, ASCII and
/// non-ASCII letters, and characters regexes treat specially.
fn pattern_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        'a', 'b', 'z', '-', '/', '.', '*', '*', '?', '[', ']', '!', '^', '{', '}', ',', '\\', ':',
        'é', 'ü', '\n', '$', '(',
    ])
}

fn name_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        'a', 'b', 'z', '-', '/', '.', '*', '[', ']', '{', ',', '\\', ':', 'é', 'ü', '\n', 'ÿ',
    ])
}

fn check(pattern: &str, names: &[String]) -> Result<(), TestCaseError> {
    let ours = ParsedGlob::parse(pattern);
    let theirs = reference(pattern);
    match (&ours, &theirs) {
        (Err(a), Err(b)) => {
            prop_assert_eq!(
                a.to_string(),
                b.kind().to_string(),
                "message of {:?}",
                pattern
            );
            return Ok(());
        }
        (Ok(_), Ok(_)) => {}
        _ => prop_assert!(
            false,
            "parse of {:?}: ours {:?}, globset {:?}",
            pattern,
            ours.as_ref().err(),
            theirs.as_ref().err()
        ),
    }
    let (Ok(ours), Ok(theirs)) = (ours, theirs) else {
        return Ok(());
    };
    let set = GlobSetBuilder::new().add(theirs.clone()).build();
    let compiled = ours.compile();
    match (&compiled, &set) {
        (Ok(_), Ok(_)) | (Err(_), Err(_)) => {}
        _ => prop_assert!(
            false,
            "compile of {:?} (regex {:?}): ours {:?}, globset {:?}",
            pattern,
            theirs.regex(),
            compiled.as_ref().err(),
            set.as_ref().err()
        ),
    }
    let (Ok(glob), Ok(set)) = (compiled, set) else {
        return Ok(());
    };
    let matcher = theirs.compile_matcher();
    for name in names {
        prop_assert_eq!(
            glob.is_match(name),
            matcher.is_match(name.as_str()),
            "GlobMatcher: {:?} (regex {:?}) on {:?}",
            pattern,
            theirs.regex(),
            name
        );
        prop_assert_eq!(
            glob.is_match_in_set(name),
            set.is_match(name.as_str()),
            "GlobSet: {:?} (regex {:?}) on {:?}",
            pattern,
            theirs.regex(),
            name
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn same_refusals_and_matches_as_globset(
        pattern in prop::collection::vec(pattern_char(), 0..10).prop_map(|v| v.into_iter().collect::<String>()),
        names in prop::collection::vec(
            prop::collection::vec(name_char(), 0..10).prop_map(|v| v.into_iter().collect::<String>()),
            1..12,
        ),
    ) {
        check(&pattern, &names)?;
    }

    /// Names built from the pattern's own characters, so that matches (not
    /// only misses) are explored.
    #[test]
    fn names_near_the_pattern_match_alike(
        pattern in prop::collection::vec(pattern_char(), 1..10).prop_map(|v| v.into_iter().collect::<String>()),
        picks in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..12), 1..12),
    ) {
        let chars: Vec<char> = pattern
            .chars()
            .filter(|c| !"*?[]{}\\!^".contains(*c))
            .chain(['a', '/', '.'])
            .collect();
        let names: Vec<String> = picks
            .iter()
            .map(|p| p.iter().map(|i| *i.get(&chars)).collect())
            .collect();
        check(&pattern, &names)?;
    }
}

/// Shapes of the recipe and of the shipped configs, with names that match
/// and names that almost do.
#[test]
fn recipe_shapes_match_alike() {
    let patterns = [
        "sentinel-*",
        "*",
        "**",
        "delete_*",
        "*_scene",
        "render_scene",
        "{get,list}_*",
        "file:///docs/**",
        "**/*.md",
        "a/**/b",
        "[a-c]?x",
        "[!a-c]*",
        "[[:digit:]]*",
        "{a,{b,c}}d",
        "x{,y}",
        "{}",
    ];
    let names: Vec<String> = [
        "",
        "sentinel-7",
        "sentinel",
        "delete_scene",
        "render_scene",
        "list_scenes",
        "file:///docs/a/b.md",
        "docs/x.md",
        "a/b",
        "a/x/y/b",
        "ab",
        "bqx",
        "7x",
        "ad",
        "bd",
        "x",
        "xy",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in patterns {
        if let Err(e) = check(p, &names) {
            panic!("{e}");
        }
    }
    assert!(Glob::new("sentinel-*").unwrap().is_match("sentinel-7"));
}
