use super::*;
use proptest::prelude::*;

const GOOD: &str = r#"
[drop]
name = "genesis-mint"
opens_at = "2026-12-01T18:00:00Z"
closes_at = "2026-12-01T18:30:00Z"

[[class]]
name = "checkout"
budget_ms = 300
paths = ["edge", "origin"]

[[class]]
name = "keyframe"
budget_ms = 800
paths = ["edge", "p2p", "origin"]

[[assets]]
glob = "frames/**"
class = "keyframe"

[[assets]]
glob = "checkout/*"
class = "checkout"
"#;

fn err(text: &str) -> PolicyError {
    Policy::parse(text, "drop.toml").unwrap_err()
}

#[test]
fn parses_the_design_example() {
    let policy = Policy::parse(GOOD, "drop.toml").unwrap();
    assert_eq!(policy.drop.name.as_str(), "genesis-mint");
    assert_eq!(policy.classes.len(), 2);
    let class = policy
        .class_for(&DropPath::new("frames/a/f1.jpg").unwrap())
        .unwrap();
    assert_eq!(class.name.as_str(), "keyframe");
    assert!(class.allows_p2p());
    let class = policy
        .class_for(&DropPath::new("checkout/index.html").unwrap())
        .unwrap();
    assert!(!class.allows_p2p());
    // `*` does not cross a directory separator.
    let e = policy
        .class_for(&DropPath::new("checkout/js/app.js").unwrap())
        .unwrap_err();
    assert_eq!(
        *e.problem,
        PolicyProblem::UnmatchedAsset("checkout/js/app.js".into())
    );
    assert!(e.to_string().starts_with("drop.toml: assets: asset"), "{e}");
}

#[test]
fn first_matching_glob_wins_then_default() {
    let text = GOOD.replace(
        "[[assets]]\nglob = \"frames/**\"",
        "[[assets]]\nglob = \"frames/special.jpg\"\nclass = \"checkout\"\n\n[[assets]]\nglob = \"frames/**\"",
    )
    .replace("closes_at = \"2026-12-01T18:30:00Z\"", "closes_at = \"2026-12-01T18:30:00Z\"\ndefault_class = \"keyframe\"");
    let policy = Policy::parse(&text, "drop.toml").unwrap();
    let special = policy
        .class_for(&DropPath::new("frames/special.jpg").unwrap())
        .unwrap();
    assert_eq!(special.name.as_str(), "checkout");
    let other = policy
        .class_for(&DropPath::new("readme.txt").unwrap())
        .unwrap();
    assert_eq!(other.name.as_str(), "keyframe");
}

#[test]
fn unknown_class_names_line_and_field() {
    let e = err(&GOOD.replace("class = \"keyframe\"", "class = \"keyframes\""));
    assert_eq!(e.field, "assets[0].class");
    assert_eq!(e.location, Location(Some((19, 9))));
    assert!(
        matches!(*e.problem, PolicyProblem::UnknownClass { ref name, .. } if name == "keyframes")
    );
    assert!(
        e.to_string()
            .starts_with("drop.toml:19:9: assets[0].class: unknown class \"keyframes\""),
        "{e}"
    );
}

#[test]
fn empty_paths() {
    let e = err(&GOOD.replace("paths = [\"edge\", \"origin\"]", "paths = []"));
    assert_eq!(
        (e.field.as_str(), *e.problem),
        ("class[0].paths", PolicyProblem::EmptyPaths)
    );
    assert_eq!(e.location, Location(Some((10, 9))));
}

#[test]
fn unknown_and_duplicate_path_names() {
    let e = err(&GOOD.replace(
        "paths = [\"edge\", \"origin\"]",
        "paths = [\"edge\", \"cdn\"]",
    ));
    assert_eq!(*e.problem, PolicyProblem::UnknownPath("cdn".into()));
    assert_eq!(e.location, Location(Some((10, 18))));
    let e = err(&GOOD.replace(
        "paths = [\"edge\", \"origin\"]",
        "paths = [\"edge\", \"edge\"]",
    ));
    assert_eq!(*e.problem, PolicyProblem::DuplicatePath("edge".into()));
}

#[test]
fn zero_and_huge_budgets() {
    let live = Policy::parse(
        &GOOD.replace("budget_ms = 300", "budget_ms = 300\npoll_ms = 500"),
        "drop.toml",
    )
    .unwrap();
    assert_eq!(live.classes[0].poll_ms, Some(500));
    assert_eq!(live.classes[1].poll_ms, None);
    for bad in ["poll_ms = 5", "poll_ms = 100000000"] {
        let e = err(&GOOD.replace("budget_ms = 300", &format!("budget_ms = 300\n{bad}")));
        assert_eq!(e.field, "class[0].poll_ms", "{bad}");
        assert!(
            matches!(*e.problem, PolicyProblem::PollOutOfRange(_)),
            "{bad}"
        );
    }
    let e = err(&GOOD.replace("budget_ms = 300", "budget_ms = 0"));
    assert_eq!(
        (e.field.as_str(), (*e.problem).clone()),
        ("class[0].budget_ms", PolicyProblem::ZeroBudget)
    );
    assert_eq!(e.location, Location(Some((9, 13))));
    let e = err(&GOOD.replace("budget_ms = 300", "budget_ms = 100000000"));
    assert_eq!(*e.problem, PolicyProblem::BudgetTooLarge(100_000_000));
    let e = err(&GOOD.replace("budget_ms = 300", "budget_ms = -5"));
    assert!(matches!(*e.problem, PolicyProblem::Syntax(_)), "{e}");
    assert_eq!(e.location.0.map(|(line, _)| line), Some(9));
}

#[test]
fn closes_before_opens() {
    let e = err(&GOOD.replace(
        "closes_at = \"2026-12-01T18:30:00Z\"",
        "closes_at = \"2026-12-01T17:30:00Z\"",
    ));
    assert_eq!(e.field, "drop.closes_at");
    assert!(matches!(
        *e.problem,
        PolicyProblem::ClosesBeforeOpens { .. }
    ));
    assert_eq!(e.location, Location(Some((5, 13))));
}

#[test]
fn duplicate_class_names() {
    let e = err(&GOOD.replace("name = \"keyframe\"", "name = \"checkout\""));
    assert_eq!(e.field, "class[1].name");
    assert_eq!(
        *e.problem,
        PolicyProblem::DuplicateClass {
            name: "checkout".into(),
            first_line: 7
        }
    );
    assert_eq!(e.location, Location(Some((13, 8))));
}

#[test]
fn unknown_fields_and_bad_values_are_named() {
    let e = err(&GOOD.replace("budget_ms = 300", "budget_ms = 300\nbudget = 5"));
    assert!(
        matches!(*e.problem, PolicyProblem::Syntax(ref m) if m.contains("budget")),
        "{e}"
    );
    assert_eq!(e.location.0.map(|(line, _)| line), Some(10));
    let e = err(&GOOD.replace(
        "opens_at = \"2026-12-01T18:00:00Z\"",
        "opens_at = \"tomorrow\"",
    ));
    assert_eq!(e.field, "drop.opens_at");
    let e = err(&GOOD.replace("glob = \"frames/**\"", "glob = \"frames/[\""));
    assert_eq!(e.field, "assets[0].glob");
    let e = err(&GOOD.replace("class = \"checkout\"", "class = \"checkout\"\n\n[drop]"));
    assert!(matches!(*e.problem, PolicyProblem::Syntax(_)), "{e}");
    let e = err(&GOOD.replace("name = \"genesis-mint\"", "name = \"Genesis Mint\""));
    assert_eq!(e.field, "drop.name");
    let e = err(&GOOD.replace(
        "closes_at = \"2026-12-01T18:30:00Z\"",
        "closes_at = \"2026-12-01T18:30:00Z\"\ndefault_class = \"vip\"",
    ));
    assert_eq!(e.field, "drop.default_class");
}

#[test]
fn no_classes() {
    let text = "[drop]\nname = \"x\"\nopens_at = \"2026-12-01T18:00:00Z\"\ncloses_at = \"2026-12-01T19:00:00Z\"\n";
    assert_eq!(*err(text).problem, PolicyProblem::NoClasses);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::parse(&text, "fuzz.toml");
    }

    #[test]
    fn mutated_policies_never_panic(cut in 0usize..GOOD.len(), insert in "[\\[\\]=\"a-z0-9 \n]{0,8}") {
        let mut text = GOOD.to_owned();
        if text.is_char_boundary(cut) {
            text.insert_str(cut, &insert);
        }
        let _ = Policy::parse(&text, "fuzz.toml");
    }
}

#[test]
fn spare_edges_needs_the_swarm_first_and_an_edge() {
    let bulk = GOOD.replace(
        "paths = [\"edge\", \"p2p\", \"origin\"]",
        "paths = [\"p2p\", \"edge\", \"origin\"]\nspare_edges = true",
    );
    let policy = Policy::parse(&bulk, "drop.toml").unwrap();
    assert!(!policy.classes[0].spare_edges);
    assert!(policy.classes[1].spare_edges);
    let off = Policy::parse(
        &GOOD.replace("budget_ms = 300", "budget_ms = 300\nspare_edges = false"),
        "drop.toml",
    )
    .unwrap();
    assert!(!off.classes[0].spare_edges);
    for (paths, class) in [
        ("[\"edge\", \"origin\"]", 0),
        ("[\"edge\", \"p2p\", \"origin\"]", 1),
    ] {
        let text = GOOD.replace(
            &format!("paths = {paths}"),
            &format!("paths = {paths}\nspare_edges = true"),
        );
        let e = err(&text);
        assert_eq!(e.field, format!("class[{class}].spare_edges"), "{paths}");
        assert_eq!(*e.problem, PolicyProblem::SpareEdgesWithoutSwarmAndEdge);
        assert!(
            e.to_string()
                .contains("spare_edges needs paths that start with \"p2p\""),
            "{e}"
        );
    }
    let e = err(&GOOD.replace(
        "paths = [\"edge\", \"origin\"]",
        "paths = [\"p2p\", \"origin\"]\nspare_edges = true",
    ));
    assert_eq!(e.field, "class[0].spare_edges");
}
