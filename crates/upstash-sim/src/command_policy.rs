//! Which commands the REST data plane refuses before they reach a
//! redis-server.
//!
//! Every data-plane command runs on the simulator's one administrative
//! connection to the server, the same connection that changes the `default`
//! and `default_ro` passwords on a reset. So the data plane refuses what Upstash
//! refuses there (transactions outside `/multi-exec`, server administration),
//! what would block or take over that shared connection (blocking commands,
//! subscriptions, `AUTH`, `SELECT`, `CLIENT`, ...), what reaches other hosts
//! (`MIGRATE`, `REPLICAOF`), and ACL changes to the users the simulator
//! manages. ACL users of the application's own stay allowed.

/// A Redis error reply (`ERR ...`, `NOPERM ...`), which the REST data plane
/// returns as `{"error": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ErrorReply(pub String);

/// The users whose passwords the simulator manages, plus its own admin user.
const MANAGED_USERS: &[&str] = &["default", "default_ro", super::redis_backend::ADMIN_USER];

/// Commands refused whatever their arguments, with the reason given.
const REFUSED: &[(&[&str], &str)] = &[
    (
        &["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"],
        "transactions are available only as a whole, through /multi-exec",
    ),
    (
        &[
            "BLPOP",
            "BRPOP",
            "BLMOVE",
            "BRPOPLPUSH",
            "BZPOPMIN",
            "BZPOPMAX",
            "BLMPOP",
            "BZMPOP",
            "WAIT",
            "WAITAOF",
        ],
        "blocking commands would stall the simulator's connection to redis-server",
    ),
    (
        &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR"],
        "subscriptions would take over the simulator's connection to redis-server",
    ),
    (
        &["AUTH", "HELLO", "SELECT", "RESET", "QUIT", "CLIENT"],
        "it would change the simulator's own connection to redis-server",
    ),
    (
        &[
            "CONFIG",
            "MODULE",
            "DEBUG",
            "SHUTDOWN",
            "REPLICAOF",
            "SLAVEOF",
            "MIGRATE",
            "SYNC",
            "PSYNC",
            "REPLCONF",
            "FAILOVER",
        ],
        "server administration is not available through the REST API",
    ),
];

/// Why the data plane refuses `args`, as an error text in Upstash's REST
/// format, or `None` when the command may run.
pub fn refusal(args: &[String]) -> Option<ErrorReply> {
    let name = args.first()?;
    let refuse =
        |why: &str| Some(ErrorReply(format!("ERR command '{}' is not allowed: {why}", name.to_lowercase())));
    if let Some((_, why)) =
        REFUSED.iter().find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name)))
    {
        return refuse(why);
    }
    if name.eq_ignore_ascii_case("XREAD") && blocks(&args[1..]) {
        return refuse("XREAD with BLOCK would stall the simulator's connection to redis-server");
    }
    // XREADGROUP GROUP <group> <consumer> [options] STREAMS ...
    if name.eq_ignore_ascii_case("XREADGROUP") && blocks(args.get(4..).unwrap_or_default()) {
        return refuse("XREADGROUP with BLOCK would stall the simulator's connection to redis-server");
    }
    if name.eq_ignore_ascii_case("ACL") {
        return acl_refusal(args);
    }
    None
}

/// Whether XREAD-style options, before `STREAMS`, include `BLOCK`.
fn blocks(options: &[String]) -> bool {
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        if option.eq_ignore_ascii_case("STREAMS") {
            return false;
        }
        if option.eq_ignore_ascii_case("BLOCK") {
            return true;
        }
        // Options with a value; skipping it keeps a value named "block" apart.
        if option.eq_ignore_ascii_case("COUNT") || option.eq_ignore_ascii_case("CLAIM") {
            rest.next();
        }
    }
    false
}

fn acl_refusal(args: &[String]) -> Option<ErrorReply> {
    let sub = args.get(1)?.to_ascii_uppercase();
    // User names are case-sensitive in Redis: `Default` is not `default`.
    let managed = |user: &String| MANAGED_USERS.contains(&user.as_str());
    let targets: &[String] = match sub.as_str() {
        "SETUSER" => args.get(2..3).unwrap_or_default(),
        "DELUSER" => args.get(2..).unwrap_or_default(),
        // Replaces every user with the ACL file's, the managed ones included.
        "LOAD" => {
            return Some(ErrorReply(
                "ERR command 'acl|load' is not allowed: it would replace the users whose passwords upstash-sim manages"
                    .into(),
            ));
        }
        _ => return None,
    };
    let user = targets.iter().find(|u| managed(u))?;
    Some(ErrorReply(format!(
        "ERR command 'acl|{}' is not allowed for user '{user}': upstash-sim manages its password",
        sub.to_lowercase()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Option<String> {
        refusal(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).map(|e| e.0)
    }

    #[test]
    fn refused_commands_match_case_insensitively() {
        for args in [
            &["multi"][..],
            &["Exec"],
            &["discard"],
            &["WATCH", "k"],
            &["blpop", "q", "0"],
            &["BRPOP", "q", "0"],
            &["blmove", "a", "b", "LEFT", "RIGHT", "0"],
            &["brpoplpush", "a", "b", "0"],
            &["bzpopmin", "z", "0"],
            &["BZPOPMAX", "z", "0"],
            &["blmpop", "0", "1", "q", "LEFT"],
            &["bzmpop", "0", "1", "z", "MIN"],
            &["wait", "1", "0"],
            &["waitaof", "1", "0", "0"],
            &["subscribe", "c"],
            &["psubscribe", "c*"],
            &["ssubscribe", "c"],
            &["monitor"],
            &["module", "list"],
            &["debug", "sleep", "10"],
            &["replicaof", "example.com", "6379"],
            &["slaveof", "no", "one"],
            &["migrate", "example.com", "6379", "k", "0", "1000"],
            &["config", "get", "*"],
            &["shutdown", "nosave"],
            &["sync"],
            &["psync", "?", "-1"],
            &["failover"],
            &["client", "kill", "id", "1"],
            &["CLIENT", "pause", "1000"],
            &["auth", "default", "x"],
            &["select", "1"],
            &["reset"],
            &["quit"],
        ] {
            let error = check(args).unwrap_or_else(|| panic!("{args:?} is refused"));
            assert!(error.starts_with("ERR "), "{error}");
            assert!(error.contains(&format!("'{}'", args[0].to_lowercase())), "{error}");
        }
    }

    #[test]
    fn xread_is_refused_only_with_block() {
        assert!(check(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]).is_some());
        assert!(check(&["xread", "count", "1", "block", "10", "streams", "s", "$"]).is_some());
        assert!(check(&["XREAD", "COUNT", "1", "STREAMS", "block", "0"]).is_none());
        assert!(check(&["XREAD", "STREAMS", "s", "0"]).is_none());
        assert!(check(&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"]).is_some());
        // A group and a consumer may be called "block".
        assert!(check(&["XREADGROUP", "GROUP", "block", "block", "STREAMS", "s", ">"]).is_none());
    }

    #[test]
    fn acl_changes_to_managed_users_are_refused() {
        assert!(check(&["ACL", "SETUSER", "default", "on", ">x"]).is_some());
        assert!(check(&["acl", "setuser", "default_ro", "nopass"]).is_some());
        assert!(check(&["acl", "setuser", "upstash-sim", "off"]).is_some());
        assert!(check(&["ACL", "DELUSER", "app", "default"]).is_some());
        assert!(check(&["ACL", "LOAD"]).is_some());
    }

    #[test]
    fn other_acl_commands_and_the_applications_users_are_allowed() {
        assert_eq!(check(&["ACL", "SETUSER", "app", "on", ">pw", "~app:*", "+get"]), None);
        assert_eq!(check(&["ACL", "SETUSER", "Default", "on"]), None, "user names are case-sensitive");
        assert_eq!(check(&["ACL", "DELUSER", "app", "other"]), None);
        assert_eq!(check(&["ACL", "WHOAMI"]), None);
        assert_eq!(check(&["ACL", "LIST"]), None);
        assert_eq!(check(&["ACL", "GETUSER", "default"]), None);
        assert_eq!(check(&["ACL"]), None);
    }

    #[test]
    fn ordinary_commands_are_allowed() {
        for args in
            [&["GET", "k"][..], &["set", "k", "v"], &["LPOP", "q"], &["XADD", "s", "*", "f", "v"], &["PING"]]
        {
            assert_eq!(check(args), None, "{args:?}");
        }
        assert_eq!(check(&[]), None);
    }
}
