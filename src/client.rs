//! `meshup client NAME`: a client's own config. For a `generate: true` client it makes
//! the key pair when there is none yet, gathers the nodes' public keys (read-only),
//! writes `<inventory dir>/clients/NAME.conf` (mode 600) and prints its path; `--show`
//! prints the config, `--qr` prints it as a QR code for the WireGuard mobile apps. For a
//! `public_key:` client it prints the config to complete on the device (its private key
//! never comes near meshup).
use std::process::ExitCode;

use miette::IntoDiagnostic as _;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use crate::client_files;
use crate::inventory::{ClientKey, Inventory};
use crate::plan::KeyBook;
use crate::render::{self, PRIVATE_KEY_TOKEN};
use crate::session::{Session, SessionOptions};
use crate::ui::Progress;

/// What stands for the private key in a `public_key:` client's config.
pub const DEVICE_KEY_PLACEHOLDER: &str = "<the device's private key>";

/// Options of `meshup client`.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Where and how to run.
    pub session: SessionOptions,
    /// The client's name.
    pub name: String,
    /// Print the config (it holds the private key of a generated client).
    pub show: bool,
    /// Print the config as a QR code.
    pub qr: bool,
}

/// `meshup client NAME`.
pub fn run(options: &ClientOptions) -> miette::Result<ExitCode> {
    let inventory = Inventory::load(&options.session.inventory)?;
    let Some(client) = inventory
        .clients()
        .iter()
        .find(|c| c.name.as_str() == options.name)
    else {
        let names: Vec<&str> = inventory
            .clients()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(miette::miette!(
            help = if names.is_empty() {
                "the inventory has no `clients:`".to_owned()
            } else {
                format!("clients: {}", names.join(", "))
            },
            "`{}` is not a client of {}",
            options.name,
            inventory.path().display()
        ));
    };
    let generated = client.key == ClientKey::Generated;
    let made = if generated {
        client_files::ensure_keys(&inventory)?
    } else {
        Vec::new()
    };
    let name = client.name.clone();

    let session = Session::open(&options.session)?;
    let progress = Progress::new(
        session.nodes().iter().map(|n| n.name.as_str()),
        session.verbose,
    );
    let gathered = session.gather_and_close(&progress);
    progress.clear();
    let keys = KeyBook::from_facts(&session.mesh, &gathered.facts, &|_| false);
    session.close(gathered.sessions);
    let node_key = |n: &crate::inventory::NodeName| keys.get(n);

    let text = if generated {
        let written = client_files::write_configs(&session.inventory, &session.mesh, &node_key)?;
        let Some(file) = written.into_iter().find(|w| w.client == name) else {
            return Err(miette::miette!("no config was written for client `{name}`"));
        };
        for node in &file.left_out {
            eprintln!(
                "warning: {node} is left out of {}: its public key is not known yet (run `meshup apply`)",
                file.path.display()
            );
        }
        if made.contains(&name) {
            eprintln!(
                "new key pair for {name}: the nodes learn its public key on the next `meshup apply`"
            );
        }
        if !options.show && !options.qr {
            println!("{}", file.path.display());
        }
        client_files::read_secret(&file.path)?
            .and_then(|s| s.expose_str().map(str::to_owned))
            .unwrap_or_default()
    } else {
        let Some(spec) = session.mesh.client(&name) else {
            return Err(miette::miette!("client `{name}` is not part of the mesh"));
        };
        let (text, left_out) = render::render_client(&session.mesh, spec, &node_key);
        for node in &left_out {
            eprintln!(
                "warning: {node} is left out: its public key is not known yet (run `meshup apply`)"
            );
        }
        let text = text.replace(PRIVATE_KEY_TOKEN, DEVICE_KEY_PLACEHOLDER);
        if !options.show && !options.qr {
            eprintln!(
                "{name} has its own key pair: put its private key in place of {DEVICE_KEY_PLACEHOLDER}"
            );
            print!("{text}");
        }
        text
    };
    if options.show {
        print!("{text}");
    }
    if options.qr {
        print!("{}", qr(&text)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// A config as a QR code drawn with Unicode half blocks (two modules per character row),
/// quiet zone included. Light modules are the drawn blocks, as `qrencode -t utf8` does,
/// so that the usual light-on-dark terminal shows dark modules on a light square.
pub fn qr(text: &str) -> miette::Result<String> {
    let code = QrCode::new(text.as_bytes()).into_diagnostic()?;
    let mut out = code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build();
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_fits_in_a_qr_code_of_half_block_rows() {
        let config = "[Interface]\nAddress = 10.10.0.4/24\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\n[Peer]\nPublicKey = HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\nEndpoint = 203.0.113.10:51820\nAllowedIPs = 10.10.0.0/24\nPersistentKeepalive = 25\n";
        let text = qr(config).expect("fits");
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows.len() > 10, "{text}");
        let width = rows[0].chars().count();
        assert!(rows.iter().all(|r| r.chars().count() == width), "{text}");
        assert!(
            text.chars()
                .all(|c| matches!(c, ' ' | '\u{2580}' | '\u{2584}' | '\u{2588}' | '\n')),
            "{text}"
        );
    }
}
