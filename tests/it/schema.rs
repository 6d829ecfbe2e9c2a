//! `meshup schema`: the inventory's JSON Schema accepts every inventory meshup ships or the
//! lab writes, rejects malformed values the parser rejects, and every key it accepts is in
//! the inventory reference (docs/inventory.md).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt as _;
use meshup::inventory::{Inventory, json_schema};
use serde_json::Value;

use crate::support_core::{render_error, root};
use crate::support_lab::lab_command;

/// The inventory as an editor sees it: YAML 1.2 (`yes` is a string), converted to JSON.
fn to_json(text: &str) -> Value {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options).expect("YAML")
}

/// A draft 7 validator of the schema, checking formats (`ipv4`, `ipv6`) too.
fn validator() -> jsonschema::Validator {
    jsonschema::draft7::options()
        .should_validate_formats(true)
        .build(&json_schema())
        .expect("the schema compiles")
}

/// The schema's complaints about inventory text (empty when it validates).
fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Vec<String> {
    let json = to_json(text);
    validator
        .iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every YAML file under `dir` (recursively), sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Follows a `$ref` (and schemars' `allOf: [{$ref}]` wrapper) to the schema it names.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(Value::String(r)) = schema.get("$ref") {
        let name = r.trim_start_matches("#/definitions/");
        return resolve(root, &root["definitions"][name]);
    }
    if let Some(Value::Array(all)) = schema.get("allOf")
        && let [only] = all.as_slice()
    {
        return resolve(root, only);
    }
    schema
}

/// The name of the definition a property schema refers to, if any.
fn definition(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .or_else(|| schema.get("allOf").and_then(|a| a.get(0)?.get("$ref")))
        .and_then(Value::as_str)
}

/// Every key path the schema accepts (`mesh.firewall.rules[].ports`), breadth first: a
/// definition used at several places (`ssh` and `nodes[].ssh`) is expanded at the first.
fn schema_keys(schema: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    let mut expanded = BTreeSet::new();
    let mut queue = std::collections::VecDeque::from([(String::new(), schema)]);
    while let Some((path, node)) = queue.pop_front() {
        if let Some(name) = definition(node)
            && !expanded.insert(name.to_owned())
        {
            continue;
        }
        let node = resolve(schema, node);
        // The object branches of `anyOf` (`firewall: trust` or a mapping) and list items.
        let mut objects = vec![node];
        if let Some(Value::Array(any)) = node.get("anyOf") {
            objects.extend(any.iter().map(|s| resolve(schema, s)));
        }
        for object in objects {
            if let Some(items) = object.get("items") {
                queue.push_back((format!("{path}[]"), items));
            }
            for (key, sub) in object
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                keys.push(path.clone());
                queue.push_back((path, sub));
            }
        }
    }
    keys
}

/// Every key path of a JSON value, lists as `[]`; `nodes[].ssh.X` counts as `ssh.X`.
fn value_keys(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, sub) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(
                    path.strip_prefix("nodes[].ssh.")
                        .map_or(path.clone(), |k| format!("ssh.{k}")),
                );
                value_keys(sub, &path, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| value_keys(i, &format!("{path}[]"), out)),
        _ => {}
    }
}

/// The inventory reference.
fn reference() -> String {
    std::fs::read_to_string(root().join("docs/inventory.md")).expect("docs/inventory.md")
}

/// The complete example of the reference: the YAML block under "A complete example".
/// The YAML block under `heading` in docs/inventory.md.
fn reference_block<'a>(doc: &'a str, heading: &str) -> &'a str {
    let section = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/inventory.md has a section {heading}"));
    let start =
        section + doc[section..].find("```yaml\n").expect("a YAML block") + "```yaml\n".len();
    let len = doc[start..].find("```").expect("the example block ends");
    &doc[start..start + len]
}

#[test]
fn schema_command_prints_the_draft7_schema_of_the_library() {
    let out = Command::cargo_bin("meshup")
        .expect("binary")
        .arg("schema")
        .output()
        .expect("run meshup schema");
    assert!(out.status.success(), "{out:?}");
    let printed: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(printed, json_schema());
    assert_eq!(
        printed["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
    if let Err(e) = jsonschema::meta::validate(&printed) {
        panic!("not a valid JSON Schema: {e}");
    }
    // What the parser requires is required, unknown keys are refused, defaults are the
    // parser's own constants.
    assert_eq!(printed["required"], serde_json::json!(["mesh", "nodes"]));
    assert_eq!(printed["additionalProperties"], false);
    let mesh = &printed["definitions"]["Mesh"];
    assert_eq!(mesh["required"], serde_json::json!(["network"]));
    assert_eq!(
        mesh["properties"]["listen_port"]["default"],
        meshup::inventory::DEFAULT_LISTEN_PORT
    );
    assert_eq!(
        mesh["properties"]["interface"]["default"],
        meshup::inventory::DEFAULT_INTERFACE
    );
}

#[test]
fn every_inventory_of_the_repository_validates_against_the_schema_as_the_parser_judges_it() {
    let validator = validator();
    let mut files = yaml_files(&root().join("inventory"));
    files.extend(yaml_files(&root().join("tests/fixtures")));
    files.push(root().join("vagrant/inventory.yaml"));
    let mut valid = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let errors = schema_errors(&validator, &text);
        match Inventory::from_str(&text, file) {
            Ok(_) => {
                valid += 1;
                assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
            }
            // A file meshup refuses (tests/fixtures/inventory/broken.yaml) has values of
            // a bad format, and the schema must see them too.
            Err(_) => assert!(!errors.is_empty(), "{}: schema accepts it", file.display()),
        }
    }
    assert!(valid >= 4, "{valid} valid inventories among {files:?}");
}

#[test]
fn the_labs_generated_inventories_validate_against_the_schema() {
    require_lab!();
    let validator = validator();
    let dir = tempfile::tempdir().expect("tempdir");
    let labs: &[&[&str]] = &[
        &["--scenario", "guide"],
        &["--scenario", "mixed", "--user", "admin"],
        &["--scenario", "nat"],
        &["--scenario", "guide-distros", "--dns-endpoints"],
        &["--scenario", "scale:12", "--flavour", "systemd"],
        &["--public", "2", "--nat", "3", "--same-nat", "nat-1,nat-2"],
        crate::ipv6_lab::LAB_ARGS,
    ];
    for (i, args) in labs.iter().enumerate() {
        let out_dir = dir.path().join(i.to_string());
        let out = Command::new(lab_command())
            .args(["up", "--name", "pk-schema", "--inventory-only", "--out"])
            .arg(&out_dir)
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .expect("run tests/lab/lab");
        assert!(out.status.success(), "{args:?}: {out:?}");
        let path = out_dir.join("inventory.yaml");
        let text = std::fs::read_to_string(&path).expect("the lab wrote an inventory");
        if let Err(e) = Inventory::from_str(&text, &path) {
            panic!("{args:?}:\n{}", render_error(&e));
        }
        let errors = schema_errors(&validator, &text);
        assert!(errors.is_empty(), "{args:?}:\n{text}\n{errors:#?}");
    }
}

#[test]
fn the_schema_rejects_malformed_values_the_parser_rejects() {
    let validator = validator();
    let inventory = |mesh: &str, node: &str| {
        format!(
            "mesh:\n  network: 10.10.0.0/24\n{mesh}nodes:\n  - name: node-a\n    endpoint: 203.0.113.1\n{node}"
        )
    };
    let good = inventory("", "");
    assert_eq!(schema_errors(&validator, &good), Vec::<String>::new());
    for (mesh, node) in [
        ("  interface: \"wg 0\"\n", ""),
        ("  interface: a-very-long-interface\n", ""),
        ("  network6: 10.10.0.0/24\n", ""),
        ("  listen_port: 70000\n", ""),
        ("  persistent_keepalive: -1\n", ""),
        ("  mtu: 500\n", ""),
        ("  config_dir: etc/wireguard\n", ""),
        ("  package_lock_timeout: 7200\n", ""),
        ("  key_max_age: 3y\n", ""),
        ("  domain: Mesh_1\n", ""),
        ("  firewall: off\n", ""),
        ("  firewall: { mode: strict }\n", ""),
        ("  firewall: { rules: [] }\n", ""),
        (
            "  firewall: { rules: [{ from: any, to: any, ports: [5432] }] }\n",
            "",
        ),
        ("  watchdog: sometimes\n", ""),
        ("  watchdog: { every: 30s }\n", ""),
        ("  listen-port: 51820\n", ""),
        ("", "    address: 10.10.0.300\n"),
        ("", "    address6: 10.10.0.3\n"),
        ("", "    state: gone\n"),
        ("", "    subnets: [192.168.1.0]\n"),
        ("", "    groups: [Web]\n"),
        ("", "    ssh: { user: \"root; id\" }\n"),
        ("", "    ssh: { become: su }\n"),
        ("", "    ssh: { host_key_checking: no }\n"),
        ("", "    ssh: { port: 0 }\n"),
        ("", "  - name: Node_B\n"),
        ("", "    endpoint2: 203.0.113.2\n"),
    ] {
        let text = inventory(mesh, node);
        assert!(
            Inventory::from_str(&text, "t.yaml").is_err(),
            "the parser accepts:\n{text}"
        );
        assert!(
            !schema_errors(&validator, &text).is_empty(),
            "the schema accepts:\n{text}"
        );
    }
}

#[test]
fn every_key_the_schema_accepts_is_in_the_inventory_reference() {
    let keys = schema_keys(&json_schema());
    // The walk reaches the deepest keys, through lists, references and `anyOf`.
    for key in [
        "mesh.firewall.rules[].ports",
        "mesh.watchdog.interval",
        "nodes[].ssh",
        "ssh.host",
        "clients[].via",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    let doc = reference();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/inventory.md has no table row for {missing:?}"
    );
}

/// The complete example and the hub-and-spoke and star ones (whose keys exclude some of a
/// full mesh's and each other's) are valid and use every key between them.
#[test]
fn the_references_complete_example_is_valid_and_uses_every_key() {
    let doc = reference();
    let mut used = BTreeSet::new();
    for heading in [
        "## A complete example",
        "## A hub-and-spoke example",
        "## A star example",
    ] {
        let example = reference_block(&doc, heading);
        if let Err(e) = Inventory::from_str(example, "docs/inventory.md") {
            panic!("{heading}: the example is invalid:\n{}", render_error(&e));
        }
        assert_eq!(schema_errors(&validator(), example), Vec::<String>::new());
        value_keys(&to_json(example), "", &mut used);
    }
    let unused: Vec<String> = schema_keys(&json_schema())
        .into_iter()
        .filter(|k| !used.contains(k))
        .collect();
    assert!(
        unused.is_empty(),
        "the complete example does not use {unused:?}"
    );
}

#[test]
fn the_schemas_defaults_are_what_the_parser_applies_to_an_inventory_without_them() {
    use meshup::inventory::{FirewallMode, HostKeyChecking, NodeState};
    let schema = json_schema();
    let default = |definition: &str, key: &str| -> Value {
        let value = &schema["definitions"][definition]["properties"][key]["default"];
        assert!(!value.is_null(), "{definition}.{key} has no default");
        value.clone()
    };
    let text = |value: Value| value.as_str().expect("a string default").to_owned();
    let inventory = crate::support_core::valid(
        "mesh:\n  network: 10.10.0.0/24\nnodes:\n  - name: node-a\n    endpoint: 203.0.113.1\n",
    );
    let mesh = inventory.mesh();
    let node = &inventory.nodes()[0];
    assert_eq!(text(default("Mesh", "interface")), mesh.interface.as_str());
    assert_eq!(text(default("Mesh", "domain")), mesh.domain.as_str());
    assert_eq!(default("Mesh", "hosts_file"), mesh.hosts_file);
    assert_eq!(default("Mesh", "listen_port"), mesh.listen_port);
    assert_eq!(
        default("Mesh", "persistent_keepalive"),
        mesh.persistent_keepalive.expect("on by default")
    );
    assert_eq!(default("Mesh", "preshared_keys"), mesh.preshared_keys);
    assert_eq!(default("Mesh", "nat_punching"), mesh.nat_punching);
    assert_eq!(
        text(default("Mesh", "config_dir")),
        mesh.config_dir.as_str()
    );
    assert_eq!(
        default("Mesh", "package_lock_timeout"),
        mesh.package_lock_timeout
    );
    assert_eq!(
        text(default("Mesh", "firewall")).parse::<FirewallMode>(),
        Ok(mesh.firewall)
    );
    assert_eq!(default("Mesh", "watchdog"), mesh.watchdog.is_some());
    assert_eq!(
        text(default("WatchdogMap", "interval")),
        mesh.watchdog.expect("on by default").to_string()
    );
    assert_eq!(text(default("Ssh", "user")), node.ssh.user.as_str());
    assert_eq!(default("Ssh", "port"), node.ssh.port);
    assert_eq!(
        text(default("Ssh", "host_key_checking")).parse::<HostKeyChecking>(),
        Ok(node.ssh.host_key_checking)
    );
    assert_eq!(
        default("Ssh", "connect_timeout"),
        node.ssh.connect_timeout.as_secs()
    );
    assert_eq!(
        text(default("Node", "state")).parse::<NodeState>(),
        Ok(node.state)
    );
}
