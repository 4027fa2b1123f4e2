//! What a caller's token lets it invite to: membership services add a member
//! when they see `invite.accepted`, so who may create an invite is the
//! service's most important check.

use std::{fmt, str::FromStr};

use super::values::{Id, Identifier};

/// One entry of the token's grants claim: invites to `target_type`/`target_id`
/// (or any id of that type) with one of `roles` (or any role when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    target_type: Identifier,
    target_id: GrantedTargets,
    roles: Vec<Identifier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum GrantedTargets {
    Any,
    One(Id),
}

impl Grant {
    /// The wildcard that grants every target of a type.
    pub const ANY_TARGET: &'static str = "*";

    /// Checks one grant as a token states it; an entry that does not parse
    /// grants nothing (the caller decides whether that refuses the token).
    pub fn parse(target_type: &str, target_id: &str, roles: &[String]) -> Result<Self, String> {
        let target_type =
            Identifier::parse(target_type).map_err(|why| format!("target_type {why}"))?;
        let target_id = if target_id == Self::ANY_TARGET {
            GrantedTargets::Any
        } else {
            GrantedTargets::One(Id::parse(target_id).map_err(|why| format!("target_id {why}"))?)
        };
        let roles = roles
            .iter()
            .map(|role| Identifier::parse(role).map_err(|why| format!("role {why}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            target_type,
            target_id,
            roles,
        })
    }

    /// Whether this grant allows inviting to the target with the role.
    pub fn covers(&self, target_type: &Identifier, target_id: &Id, role: &Identifier) -> bool {
        self.covers_target(target_type, target_id)
            && (self.roles.is_empty() || self.roles.contains(role))
    }

    /// Whether this grant names the target, whatever its roles: what a
    /// watcher of the target needs.
    pub fn covers_target(&self, target_type: &Identifier, target_id: &Id) -> bool {
        self.target_type == *target_type
            && match &self.target_id {
                GrantedTargets::Any => true,
                GrantedTargets::One(id) => id == target_id,
            }
    }

    pub fn target_type(&self) -> &str {
        self.target_type.as_str()
    }

    /// The granted id, or [`Self::ANY_TARGET`].
    pub fn target_id(&self) -> &str {
        match &self.target_id {
            GrantedTargets::Any => Self::ANY_TARGET,
            GrantedTargets::One(id) => id.as_str(),
        }
    }

    /// Empty: any role.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(Identifier::as_str)
    }
}

/// `TYPE/ID[=ROLE,ROLE]`, as `token --grant` takes it: `organization/acme=member`,
/// `party/*`.
impl FromStr for Grant {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (target, roles) = match spec.split_once('=') {
            Some((target, roles)) => (target, Some(roles)),
            None => (spec, None),
        };
        let Some((target_type, target_id)) = target.split_once('/') else {
            return Err(format!(
                "`{spec}` is not TYPE/ID[=ROLE,ROLE] (e.g. organization/acme=member or party/*)"
            ));
        };
        let roles: Vec<String> = roles
            .map(|roles| roles.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        Self::parse(target_type, target_id, &roles)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.target_type(), self.target_id())?;
        let roles: Vec<&str> = self.roles().collect();
        if !roles.is_empty() {
            write!(f, "={}", roles.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(target_type: &str, id: &str, role: &str) -> (Identifier, Id, Identifier) {
        (
            Identifier::parse(target_type).unwrap(),
            Id::parse(id).unwrap(),
            Identifier::parse(role).unwrap(),
        )
    }

    fn covers(grant: &str, target_type: &str, id: &str, role: &str) -> bool {
        let (t, i, r) = target(target_type, id, role);
        grant.parse::<Grant>().unwrap().covers(&t, &i, &r)
    }

    #[test]
    fn a_grant_covers_its_target_and_roles_only() {
        assert!(covers(
            "organization/acme=member",
            "organization",
            "acme",
            "member"
        ));
        assert!(!covers(
            "organization/acme=member",
            "organization",
            "acme",
            "owner"
        ));
        assert!(!covers(
            "organization/acme=member",
            "organization",
            "other",
            "member"
        ));
        assert!(!covers(
            "organization/acme=member",
            "party",
            "acme",
            "member"
        ));
    }

    #[test]
    fn a_wildcard_id_covers_every_target_of_its_type() {
        assert!(covers("party/*", "party", "anything", "host"));
        assert!(!covers("party/*", "organization", "anything", "host"));
    }

    #[test]
    fn no_roles_means_any_role() {
        assert!(covers("organization/acme", "organization", "acme", "owner"));
    }

    #[test]
    fn a_star_is_a_wildcard_only_as_the_whole_id() {
        // `acme*` is not a valid id at all; a grant cannot hide a prefix match.
        assert!("organization/acme*".parse::<Grant>().is_err());
    }

    #[test]
    fn malformed_specs_are_refused_with_the_reason() {
        for bad in [
            "organization",
            "Organization/acme",
            "organization/",
            "org/acme=",
            "org/a=Owner",
        ] {
            assert!(bad.parse::<Grant>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spec_prints_as_it_was_written() {
        for spec in ["organization/acme=admin,member", "party/*"] {
            assert_eq!(spec.parse::<Grant>().unwrap().to_string(), spec);
        }
    }
}
