//! A real `redis-server` standing behind a simulated database: the simulator
//! keeps the server's `default` user password equal to the database password.

use redis::{AsyncCommands as _, IntoConnectionInfo as _, aio::MultiplexedConnection};
use uuid::Uuid;

use super::{command_policy::refusal, database::Credentials};

/// The simulator's own ACL user on every redis-server it manages.
pub const ADMIN_USER: &str = "upstash-sim";

/// The simulator's administrative connection to one redis-server.
#[derive(Clone)]
pub struct RedisBackend {
    pub address: String,
    conn: MultiplexedConnection,
}

impl RedisBackend {
    /// Connects to `address` and creates an ACL user of the simulator's own,
    /// so later password changes of `default` never lock it out.
    /// `default_password` is tried when the server already requires one.
    pub async fn connect(address: &str, default_password: Option<&str>) -> Result<Self, String> {
        let mut conn = match open(address, None).await {
            Ok(conn) => conn,
            Err(first) => match default_password {
                Some(pw) => open(address, Some(("default", pw))).await?,
                None => return Err(first),
            },
        };
        let admin_password = Uuid::new_v4().simple().to_string();
        redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                ADMIN_USER,
                "on",
                "resetpass",
                &format!(">{admin_password}"),
                "~*",
                "&*",
                "+@all",
            ])
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("redis-server {address}: cannot create the simulator's ACL user: {e}"))?;
        let mut conn = open(address, Some((ADMIN_USER, &admin_password))).await?;
        let _: String = conn.ping().await.map_err(|e| format!("redis-server {address}: {e}"))?;
        Ok(Self { address: address.to_owned(), conn })
    }

    /// Makes `credentials` the only ones the server accepts: the password for
    /// `default`, the read-only token for `default_ro`.
    pub async fn set_credentials(&self, credentials: &Credentials) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let users = [
            ("default", credentials.password.as_str(), "+@all"),
            ("default_ro", credentials.read_only_rest_token.as_str(), "+@read"),
        ];
        for (user, password, commands) in users {
            redis::cmd("ACL")
                .arg(&[
                    "SETUSER",
                    user,
                    "on",
                    "resetpass",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "-@all",
                    commands,
                ])
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| format!("redis-server {}: cannot set the {user} password: {e}", self.address))?;
        }
        Ok(())
    }

    /// Runs one command for the REST data plane.
    pub async fn execute(&self, args: &[String]) -> Result<redis::Value, String> {
        let name = args.first().ok_or("ERR empty command")?;
        // The data plane checks first; this keeps the backend safe on its own.
        if let Some(error) = refusal(args) {
            return Err(error);
        }
        let mut cmd = redis::cmd(name);
        cmd.arg(&args[1..]);
        cmd.query_async(&mut self.conn.clone()).await.map_err(|e| e.to_string())
    }

    /// Runs commands in order; `atomic` wraps them in MULTI/EXEC.
    pub async fn execute_many(
        &self,
        commands: &[Vec<String>],
        atomic: bool,
    ) -> Vec<Result<redis::Value, String>> {
        if atomic {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for args in commands {
                if let Some(error) = refusal(args) {
                    return commands.iter().map(|_| Err(error.clone())).collect();
                }
                if let Some(name) = args.first() {
                    pipe.cmd(name).arg(&args[1..]);
                }
            }
            return match pipe.query_async::<Vec<redis::Value>>(&mut self.conn.clone()).await {
                Ok(replies) => replies.into_iter().map(Ok).collect(),
                Err(e) => commands.iter().map(|_| Err(e.to_string())).collect(),
            };
        }
        let mut out = Vec::with_capacity(commands.len());
        for args in commands {
            out.push(self.execute(args).await);
        }
        out
    }
}

async fn open(address: &str, user: Option<(&str, &str)>) -> Result<MultiplexedConnection, String> {
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some((user, password)) = user {
        settings = settings.set_username(user).set_password(password);
    }
    let info = parse_address(address)?
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(|e| format!("redis-server {address}: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("redis-server {address}: cannot connect: {e}"))?;
    // Connecting does not prove authentication on RESP2; a PING does.
    let _: String = conn.ping().await.map_err(|e| format!("redis-server {address}: {e}"))?;
    Ok(conn)
}

fn parse_address(address: &str) -> Result<redis::ConnectionAddr, String> {
    let (host, port) =
        address.rsplit_once(':').ok_or_else(|| format!("--redis {address}: expected HOST:PORT"))?;
    let port = port.parse::<u16>().map_err(|_| format!("--redis {address}: invalid port"))?;
    Ok(redis::ConnectionAddr::Tcp(host.to_owned(), port))
}
