//! Whose an alerting object is, and who may see or change it.
//!
//! Every rule, silence and alert belongs to one project or to everyone:
//! - a rule to the project its `project` matcher names exactly (no `*`);
//! - a silence to the project its `project` matcher names exactly;
//! - an alert to its `project` label.
//!
//! Anything else (no `project`, or a wildcard) is global. A caller whose
//! token is for one project sees and changes only that project's objects,
//! plus Loupe's built-in rules (read-only: they hold nothing of anyone's);
//! global objects are for a caller who sees every project (a server in
//! open mode). Another project's objects answer 404, as if they did not
//! exist, like its runs do.

use std::collections::BTreeMap;

use loupe_api::{Alert, RuleSource, RuleSpec, Silence};

use crate::auth::Principal;

/// The project an alerting object belongs to; `None`: global.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub Option<String>);

impl Owner {
    fn of_matcher(project: Option<&String>) -> Owner {
        Owner(project.filter(|p| !p.contains('*')).cloned())
    }

    pub fn of_rule(spec: &RuleSpec) -> Owner {
        Owner::of_matcher(spec.project.as_ref())
    }

    pub fn of_silence(s: &Silence) -> Owner {
        Owner::of_matcher(s.matchers.get(loupe_model::label::PROJECT))
    }

    pub fn of_alert(a: &Alert) -> Owner {
        Owner(a.labels.get(loupe_model::label::PROJECT).cloned())
    }

    /// Whether `who` may see the object (and, with the role, change it).
    pub fn visible_to(&self, who: &Principal) -> bool {
        match (&who.project, &self.0) {
            (None, _) => true,
            (Some(mine), Some(p)) => mine == p,
            (Some(_), None) => false,
        }
    }
}

/// Whether `who` may list a rule: its own, or one of Loupe's built-ins.
pub fn rule_listed(who: &Principal, source: RuleSource, spec: &RuleSpec) -> bool {
    source == RuleSource::Builtin || Owner::of_rule(spec).visible_to(who)
}

/// A scoped caller's new object lands in its project: the `project`
/// matcher is filled in when left out; naming another project (or a
/// wildcard) is refused. `Err` carries the message for a 403.
pub fn claim(who: &Principal, matcher: &mut Option<String>, what: &str) -> Result<(), String> {
    let Some(mine) = &who.project else {
        return Ok(());
    };
    match matcher {
        None => {
            *matcher = Some(mine.clone());
            Ok(())
        }
        Some(p) if p == mine => Ok(()),
        Some(p) => Err(format!(
            "this token belongs to project {mine:?}: a {what} for project {p:?} is not its to make"
        )),
    }
}

/// [`claim`] for a silence's matchers.
pub fn claim_matchers(
    who: &Principal,
    matchers: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let key = loupe_model::label::PROJECT;
    let mut project = matchers.remove(key);
    let r = claim(who, &mut project, "silence");
    if let Some(p) = project {
        matchers.insert(key.to_string(), p);
    }
    r
}

#[cfg(test)]
mod tests {
    use loupe_model::Role;

    use super::*;

    fn who(project: Option<&str>) -> Principal {
        Principal {
            project: project.map(str::to_string),
            role: Role::Admin,
            who: "t".into(),
        }
    }

    fn rule(project: Option<&str>) -> RuleSpec {
        RuleSpec {
            name: "r".into(),
            kind: "incident".into(),
            project: project.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_scoped_caller_sees_its_own_rules_and_the_builtins_only() {
        let a = who(Some("a"));
        assert!(rule_listed(&a, RuleSource::Api, &rule(Some("a"))));
        assert!(!rule_listed(&a, RuleSource::Api, &rule(Some("b"))));
        assert!(!rule_listed(&a, RuleSource::File, &rule(None)));
        assert!(!rule_listed(&a, RuleSource::Api, &rule(Some("a*"))));
        assert!(rule_listed(&a, RuleSource::Builtin, &rule(None)));
        let open = who(None);
        assert!(rule_listed(&open, RuleSource::Api, &rule(Some("b"))));
        assert!(rule_listed(&open, RuleSource::File, &rule(None)));
    }

    #[test]
    fn a_new_object_is_claimed_for_the_callers_project() {
        let a = who(Some("a"));
        let mut m = None;
        claim(&a, &mut m, "rule").unwrap();
        assert_eq!(m.as_deref(), Some("a"));
        let mut other = Some("b".to_string());
        assert!(claim(&a, &mut other, "rule").unwrap_err().contains("\"b\""));
        let mut wild = Some("*".to_string());
        assert!(claim(&a, &mut wild, "rule").is_err());
        let mut global = None;
        claim(&who(None), &mut global, "rule").unwrap();
        assert_eq!(global, None);

        let mut matchers = BTreeMap::from([("alertname".to_string(), "x".to_string())]);
        claim_matchers(&a, &mut matchers).unwrap();
        assert_eq!(matchers["project"], "a");
        let mut theirs = BTreeMap::from([("project".to_string(), "b".to_string())]);
        assert!(claim_matchers(&a, &mut theirs).is_err());
        assert_eq!(theirs["project"], "b", "a refused claim changes nothing");
    }
}
