use super::*;

const PROMETHEUS_YML: &str = r#"
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    cluster: lab
rule_files:
  - rules.yml
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["alertmanager:9093"]
remote_write:
  - url: http://remote/api/v1/write
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["n1:9100", "n2:9100"]
        labels:
          rack: r1
  - job_name: dcgm
    scrape_interval: 5s
    metrics_path: /dcgm
    honor_labels: true
    params:
      module: [gpu]
    file_sd_configs:
      - files: ["targets/*.json"]
        refresh_interval: 30s
    relabel_configs:
      - source_labels: [__address__]
        regex: "(.*):9400"
        target_label: host
        replacement: "$1"
      - source_labels: [host]
        regex: skip.*
        action: drop
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: DCGM_FI_DEV_(XID_ERRORS|GPU_UTIL)
        action: keep
    sample_limit: 5000
    body_size_limit: 10MB
"#;

#[test]
fn a_prometheus_yml_reads_with_defaults_and_ignored_sections() {
    let f = parse_scrape_file(PROMETHEUS_YML, "prometheus.yml").unwrap();
    assert_eq!(
        f.ignored_sections,
        ["alerting", "remote_write", "rule_files"]
    );
    assert_eq!(f.global.scrape_interval, Duration::from_secs(15));
    assert_eq!(f.global.scrape_timeout, Duration::from_secs(10));
    assert_eq!(f.global.external_labels, [("cluster".into(), "lab".into())]);
    let node = &f.jobs[0];
    assert_eq!(node.scrape_interval, Duration::from_secs(15));
    assert_eq!(node.metrics_path, "/metrics");
    assert!(!node.honor_labels && node.honor_timestamps);
    let dcgm = &f.jobs[1];
    assert_eq!(dcgm.scrape_interval, Duration::from_secs(5));
    // A job's shorter interval caps the global timeout.
    assert_eq!(dcgm.scrape_timeout, Duration::from_secs(5));
    assert_eq!(dcgm.file_sd[0].refresh_interval, Duration::from_secs(30));
    assert_eq!(dcgm.sample_limit, 5000);
    assert_eq!(dcgm.body_size_limit, 10 << 20);
    assert_eq!(dcgm.metric_relabel_configs.len(), 1);
}

#[test]
fn targets_get_job_instance_relabelling_and_params() {
    let f = parse_scrape_file(PROMETHEUS_YML, "p.yml").unwrap();
    let t = f.jobs[0].targets(&f.jobs[0].static_configs).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].address, "n1:9100");
    assert_eq!(t[0].path_and_query, "/metrics");
    assert_eq!(
        t[0].labels,
        vec![
            ("instance".to_string(), "n1:9100".to_string()),
            ("job".into(), "node".into()),
            ("rack".into(), "r1".into())
        ]
    );
    let groups = vec![TargetGroup {
        targets: vec!["g1:9400".into(), "skipme:9400".into()],
        labels: [("loupe_project".to_string(), "fleet".to_string())].into(),
    }];
    let t = f.jobs[1].targets(&groups).unwrap();
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0].path_and_query, "/dcgm?module=gpu");
    assert_eq!(t[0].project.as_deref(), Some("fleet"));
    assert!(t[0].labels.contains(&("host".into(), "g1".into())));
    assert!(!t[0].labels.iter().any(|(k, _)| k == "loupe_project"));
}

#[test]
fn a_port_is_added_and_per_target_intervals_read() {
    let yml = "scrape_configs:\n  - job_name: j\n    scrape_interval: 10s\n    static_configs:\n      - targets: [h]\n        labels: {__scrape_interval__: 2s, __scrape_timeout__: 1s}\n";
    let f = parse_scrape_file(yml, "f").unwrap();
    let t = f.jobs[0].targets(&f.jobs[0].static_configs).unwrap();
    assert_eq!(t[0].address, "h:80");
    assert_eq!(t[0].interval, Duration::from_secs(2));
    assert_eq!(t[0].timeout, Duration::from_secs(1));
}

#[test]
fn keys_that_change_meaning_are_refused_naming_file_job_and_key() {
    let yml = "scrape_configs:\n  - job_name: secure\n    basic_auth: {username: a, password: b}\n    static_configs: [{targets: [a:1]}]\n";
    let e = parse_scrape_file(yml, "prometheus.yml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("prometheus.yml") && e.contains("\"secure\"") && e.contains("\"basic_auth\""),
        "{e}"
    );
    // Harmless ones are not.
    let yml = "scrape_configs:\n  - job_name: j\n    follow_redirects: false\n";
    parse_scrape_file(yml, "f").unwrap();
}

#[test]
fn bad_values_are_refused_with_their_place() {
    let e = parse_scrape_file(
        "scrape_configs:\n  - job_name: j\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        "f",
    )
    .unwrap_err();
    assert!(e.place.contains("scrape_timeout"), "{e}");
    let e = parse_scrape_file("scrape_configs:\n  - job_name: j\n    scheme: https\n", "f")
        .unwrap_err();
    assert!(e.place.ends_with("scheme"), "{e}");
    let e = parse_scrape_file(
        "scrape_configs:\n  - job_name: j\n    relabel_configs:\n      - action: keep\n        regex: '('\n",
        "f",
    )
    .unwrap_err();
    assert!(
        e.place.ends_with("relabel_configs[0]") && e.message.contains("regex"),
        "{e}"
    );
    let e =
        parse_scrape_file("scrape_configs:\n  - job_name: j\n  - job_name: j\n", "f").unwrap_err();
    assert!(e.message.contains("earlier job"), "{e}");
    let e = parse_scrape_file("scrape_configs: [", "f").unwrap_err();
    assert_eq!(e.file, "f");
}

#[test]
fn honor_labels_and_exported_prefix() {
    let target = vec![
        ("instance".to_string(), "h:1".to_string()),
        ("job".to_string(), "j".to_string()),
    ];
    let sample = vec![
        ("job".to_string(), "inner".to_string()),
        ("exported_job".to_string(), "x".to_string()),
        ("empty".to_string(), String::new()),
    ];
    let l = merge_target_labels(&sample, &target, false);
    assert_eq!(l["job"], "j");
    assert_eq!(l["exported_exported_job"], "inner");
    assert_eq!(l["exported_job"], "x");
    assert!(!l.contains_key("empty"));
    let l = merge_target_labels(&sample, &target, true);
    assert_eq!(l["job"], "inner");
    assert_eq!(l["instance"], "h:1");
}

#[test]
fn file_sd_groups_in_json_and_yaml() {
    let j =
        parse_target_groups(br#"[{"targets":["a:1"],"labels":{"env":"x"}}]"#, "t.json").unwrap();
    assert_eq!(j[0].targets, ["a:1"]);
    let y = parse_target_groups(b"- targets: [a:1]\n  labels: {env: x}\n", "t.yml").unwrap();
    assert_eq!(j, y);
    let e = parse_target_groups(b"[{\"targets\": 3}]", "t.json").unwrap_err();
    assert_eq!(e.file, "t.json");
}

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    assert!(parse_duration("30m1h").is_err());
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("").is_err());
    assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30s500ms");
    assert_eq!(parse_size("10MB").unwrap(), 10 << 20);
    assert!(parse_size("10XB").is_err());
}
