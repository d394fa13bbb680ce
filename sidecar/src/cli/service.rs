//! `peersync service install|print`: `peersync serve` as a systemd user unit (Linux) or a
//! launchd agent (macOS), with absolute paths; printed, or written where the service manager
//! looks, with how to start it. Never starts or enables anything itself.
use crate::db;
use crate::error::{Error, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum ServiceAction {
    /// Write the service file (systemd: $XDG_CONFIG_HOME/systemd/user/, launchd:
    /// ~/Library/LaunchAgents/) and print how to start it. Starts nothing.
    Install(ServiceArgs),
    /// Print the service file, writing nothing.
    Print(ServiceArgs),
}

#[derive(Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    db: super::DbArg,
    #[command(flatten)]
    key: super::KeyArg,
    /// The address `serve` listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// The service's name (default: peersync-<database file name>).
    #[arg(long)]
    name: Option<String>,
    /// The service manager (default: this system's).
    #[arg(long, value_enum)]
    manager: Option<Manager>,
    /// More `serve` options, after `--` (e.g. `-- --interval 60 --authority laptop.tail.net`).
    #[arg(last = true, value_name = "SERVE_ARGS")]
    serve_args: Vec<String>,
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    /// A systemd user unit (Linux).
    Systemd,
    /// A launchd agent (macOS).
    Launchd,
}

/// What a service runs and where its file goes.
struct Service {
    manager: Manager,
    /// The unit's or agent's name: `peersync-app`.
    name: String,
    /// The command line: this binary, `serve`, its options, all paths absolute.
    argv: Vec<String>,
    db: PathBuf,
    /// Where launchd writes the agent's output.
    log: PathBuf,
}

pub fn run(action: ServiceAction) -> Result<()> {
    match action {
        ServiceAction::Print(a) => {
            let s = service(a)?;
            out!("{}", s.text()?);
            Ok(())
        }
        ServiceAction::Install(a) => install(&service(a)?),
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Cli("HOME is not set: cannot find where the service file goes".into()))
}

fn service(a: ServiceArgs) -> Result<Service> {
    let db = absolute(&a.db.db)?;
    let conn = db::open(&db, false)?;
    let device = peersync_core::device_id(&conn).map_err(|_| {
        Error::Cli(format!(
            "{} is not set up for sync: run `peersync init --db {} --name NAME` first",
            db.display(),
            db.display()
        ))
    })?;
    drop(conn);
    let key = absolute(&crate::keys::resolve(a.key.key.as_deref(), &device)?)?;
    if !key.exists() {
        return Err(Error::Cli(format!(
            "the key file {} does not exist: pass --key FILE (the one `init` made)",
            key.display()
        )));
    }
    let exe = std::env::current_exe()?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let stem = db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match a.name {
        Some(n) => n,
        None => format!("peersync-{stem}"),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(Error::Cli(format!("service name {name:?}: use letters, digits, '-', '_' and '.' (pass --name)")));
    }
    let mut argv = vec![path_text(&exe)?, "serve".into(), "--db".into(), path_text(&db)?];
    argv.extend(["--key".into(), path_text(&key)?, "--listen".into(), a.listen]);
    argv.extend(a.serve_args);
    if argv.iter().any(|s| s.contains(['\n', '\r', '\0'])) {
        return Err(Error::Cli("a path or argument of the service holds a line break".into()));
    }
    let manager = a.manager.unwrap_or(if cfg!(target_os = "macos") { Manager::Launchd } else { Manager::Systemd });
    let log = home()?.join("Library/Logs").join(format!("{name}.log"));
    Ok(Service { manager, name, argv, db, log })
}

fn path_text(p: &Path) -> Result<String> {
    p.to_str().map(str::to_string).ok_or_else(|| Error::Cli(format!("{} is not valid UTF-8", p.display())))
}

impl Service {
    fn label(&self) -> String {
        format!("org.peersync.{}", self.name.trim_start_matches("peersync-"))
    }

    /// Where the service manager looks for it.
    fn file(&self) -> Result<PathBuf> {
        Ok(match self.manager {
            Manager::Systemd => {
                let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
                    Some(d) => PathBuf::from(d),
                    None => home()?.join(".config"),
                };
                config.join("systemd/user").join(format!("{}.service", self.name))
            }
            Manager::Launchd => home()?.join("Library/LaunchAgents").join(format!("{}.plist", self.label())),
        })
    }

    fn text(&self) -> Result<String> {
        Ok(match self.manager {
            Manager::Systemd => systemd_unit(self),
            Manager::Launchd => launchd_plist(self, &path_text(&self.log)?),
        })
    }

    /// The commands that start it, check it and show its log.
    fn how_to_start(&self, file: &Path) -> String {
        match self.manager {
            Manager::Systemd => format!(
                "start it now and at every login:\n  systemctl --user daemon-reload\n  systemctl --user enable --now {n}.service\n\
                 its state and log:\n  systemctl --user status {n}.service\n  journalctl --user -u {n}.service -f\n\
                 to keep it running while you are logged out: loginctl enable-linger $USER\n\
                 to remove it: systemctl --user disable --now {n}.service && rm {f}",
                n = self.name,
                f = file.display()
            ),
            Manager::Launchd => format!(
                "start it now and at every login:\n  launchctl bootstrap gui/$(id -u) {f}\n\
                 its state and log:\n  launchctl print gui/$(id -u)/{l}\n  tail -f {log}\n\
                 to remove it: launchctl bootout gui/$(id -u)/{l} && rm {f}",
                f = file.display(),
                l = self.label(),
                log = self.log.display()
            ),
        }
    }
}

fn install(s: &Service) -> Result<()> {
    let file = s.file()?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if s.manager == Manager::Launchd {
        if let Some(dir) = s.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, s.text()?)?;
    std::fs::rename(&tmp, &file)?;
    outln!("wrote {} (peersync serve --db {})", file.display(), s.db.display());
    outln!("{}", s.how_to_start(&file));
    Ok(())
}

/// One argument of a systemd `ExecStart=` line: as it is when plain, else double-quoted with
/// `\` and `"` escaped; `%` (specifiers) and `$` (variables) doubled, so they stay literal.
fn systemd_word(s: &str) -> String {
    let s = s.replace('%', "%%").replace('$', "$$");
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._:@+=,-%$".contains(c));
    if plain {
        s
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn systemd_unit(s: &Service) -> String {
    let exec: Vec<String> = s.argv.iter().map(|a| systemd_word(a)).collect();
    format!(
        "# Written by `peersync service install`: the peersync sidecar for one database.\n\
         [Unit]\n\
         Description=peersync sidecar for {db}\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         # serve finishes the request in flight on SIGTERM, then stops\n\
         TimeoutStopSec=30\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        db = s.db.display().to_string().replace('%', "%%"),
        exec = exec.join(" ")
    )
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn launchd_plist(s: &Service, log: &str) -> String {
    let args: String = s.argv.iter().map(|a| format!("    <string>{}</string>\n", xml(a))).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `peersync service install`: the peersync sidecar for one database. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key>\n  <string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n\
         \x20 <key>RunAtLoad</key>\n  <true/>\n\
         \x20 <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n\
         \x20 <key>ThrottleInterval</key>\n  <integer>5</integer>\n\
         \x20 <key>StandardOutPath</key>\n  <string>{log}</string>\n\
         \x20 <key>StandardErrorPath</key>\n  <string>{log}</string>\n\
         </dict>\n\
         </plist>\n",
        label = xml(&s.label()),
        log = xml(log)
    )
}

#[cfg(test)]
mod tests {
    use super::systemd_word;

    #[test]
    fn systemd_words_stay_literal() {
        assert_eq!(systemd_word("/usr/bin/peersync"), "/usr/bin/peersync");
        assert_eq!(systemd_word("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(systemd_word("/home/a b/app.db"), "\"/home/a b/app.db\"");
        assert_eq!(systemd_word("/x/50%/\"q\"\\"), "\"/x/50%%/\\\"q\\\"\\\\\"");
        assert_eq!(systemd_word("$HOME"), "$$HOME");
        assert_eq!(systemd_word(""), "\"\"");
    }
}
