//! `simdnet bench`: the JSON (parsed here by a small strict reader), the table, and the
//! command-line errors. Every run uses `--quick`, so the figures are rough but must be there.

mod common;
use common::{expect, simdnet};
use simdnet::kernels::Isa;

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            other => panic!("{other:?} is not an object (looking for {key:?})"),
        }
    }

    fn num(&self) -> f64 {
        match self {
            Json::Num(x) => *x,
            other => panic!("{other:?} is not a number"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("{other:?} is not a string"),
        }
    }

    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            other => panic!("{other:?} is not an array"),
        }
    }
}

/// Parses one JSON document (RFC 8259; the escapes `simdnet bench` can write), panicking with
/// the byte offset on anything else, trailing text included.
fn parse(text: &str) -> Json {
    let b = text.as_bytes();
    let mut i = 0;
    let v = value(b, &mut i);
    skip(b, &mut i);
    assert_eq!(i, b.len(), "trailing text at byte {i}");
    v
}

fn skip(b: &[u8], i: &mut usize) {
    while *i < b.len() && b" \t\r\n".contains(&b[*i]) {
        *i += 1;
    }
}

fn eat(b: &[u8], i: &mut usize, c: u8) {
    skip(b, i);
    assert_eq!(b.get(*i), Some(&c), "expected {:?} at byte {i}", c as char);
    *i += 1;
}

fn value(b: &[u8], i: &mut usize) -> Json {
    skip(b, i);
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            let mut fields = Vec::new();
            skip(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Json::Obj(fields);
            }
            loop {
                skip(b, i);
                let Json::Str(key) = value(b, i) else {
                    panic!("a key must be a string at byte {i}");
                };
                assert!(fields.iter().all(|(k, _)| *k != key), "duplicate key {key}");
                eat(b, i, b':');
                fields.push((key, value(b, i)));
                skip(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Json::Obj(fields);
                    }
                    _ => panic!("expected ',' or '}}' at byte {i}"),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            let mut items = Vec::new();
            skip(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Json::Arr(items);
            }
            loop {
                items.push(value(b, i));
                skip(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Json::Arr(items);
                    }
                    _ => panic!("expected ',' or ']' at byte {i}"),
                }
            }
        }
        Some(b'"') => {
            *i += 1;
            let mut s = String::new();
            loop {
                let c = *b.get(*i).expect("unterminated string");
                *i += 1;
                match c {
                    b'"' => return Json::Str(s),
                    b'\\' => {
                        let e = b[*i];
                        *i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => s.push(e as char),
                            b'n' => s.push('\n'),
                            b't' => s.push('\t'),
                            b'u' => {
                                let hex = std::str::from_utf8(&b[*i..*i + 4]).unwrap();
                                s.push(
                                    char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap(),
                                );
                                *i += 4;
                            }
                            _ => panic!("bad escape at byte {i}"),
                        }
                    }
                    c if c < 0x20 => panic!("raw control character at byte {i}"),
                    _ => {
                        // A UTF-8 sequence: copy it whole.
                        let start = *i - 1;
                        while *i < b.len() && (b[*i] & 0xC0) == 0x80 {
                            *i += 1;
                        }
                        s.push_str(std::str::from_utf8(&b[start..*i]).unwrap());
                    }
                }
            }
        }
        Some(b't') if b[*i..].starts_with(b"true") => {
            *i += 4;
            Json::Bool(true)
        }
        Some(b'f') if b[*i..].starts_with(b"false") => {
            *i += 5;
            Json::Bool(false)
        }
        Some(b'n') if b[*i..].starts_with(b"null") => {
            *i += 4;
            Json::Null
        }
        Some(c) if *c == b'-' || c.is_ascii_digit() => {
            let start = *i;
            while *i < b.len() && b"+-.eE0123456789".contains(&b[*i]) {
                *i += 1;
            }
            let t = std::str::from_utf8(&b[start..*i]).unwrap();
            assert!(
                !t.starts_with("00") && !t.starts_with("-00"),
                "bad number {t}"
            );
            Json::Num(t.parse().unwrap_or_else(|_| panic!("bad number {t}")))
        }
        other => panic!("unexpected {other:?} at byte {i}"),
    }
}

/// The kernel rows every run has, in the table's order.
const KERNELS: [&str; 26] = [
    "conv1_forward",
    "conv1_backward",
    "conv2_forward",
    "conv2_backward",
    "fc1_forward",
    "fc1_backward",
    "fc2_forward",
    "fc2_backward",
    "fc3_forward",
    "fc3_backward",
    "gemm_256",
    "gemm_512",
    "gemm_1024",
    "cross_entropy",
    "sgd_momentum",
    "relu_forward_conv1",
    "relu_backward_conv1",
    "relu_forward_conv2",
    "relu_backward_conv2",
    "bias_add_fc1",
    "bias_backward_fc1",
    "bias_backward_conv1",
    "maxpool_forward_conv1",
    "maxpool_backward_conv1",
    "maxpool_forward_conv2",
    "maxpool_backward_conv2",
];

fn names(isas: &[Isa]) -> Vec<&'static str> {
    isas.iter().map(|i| i.name()).collect()
}

#[test]
fn json_has_a_peak_per_isa_every_kernel_and_the_model_rows() {
    let (stdout, _) = expect(
        &simdnet(&["bench", "--quick", "--json", "--threads", "2"], &[]),
        0,
        &[],
    );
    let j = parse(&stdout);
    let supported = names(&Isa::supported());
    let isas: Vec<&str> = j
        .get("machine")
        .get("isas")
        .arr()
        .iter()
        .map(Json::str)
        .collect();
    assert_eq!(isas, supported);
    assert!(j.get("machine").get("cores").num() >= 1.0);
    let settings = j.get("settings");
    assert_eq!(settings.get("quick"), &Json::Bool(true));
    assert_eq!(settings.get("threads").num(), 2.0);
    for isa in &supported {
        let p = j.get("peak").get(isa);
        let (one, all) = (
            p.get("gflops_1_thread").num(),
            p.get("gflops_all_threads").num(),
        );
        assert!(one > 0.0 && all > 0.0, "{isa}: {one}, {all}");
    }
    let rows = j.get("kernels").arr();
    let ids: Vec<&str> = rows.iter().map(|r| r.get("id").str()).collect();
    assert_eq!(ids, KERNELS);
    for row in rows {
        let id = row.get("id").str();
        let flops = row.get("unit").str() == "GFLOP/s";
        assert_eq!(
            row.get("unit").str(),
            if flops { "GFLOP/s" } else { "GB/s" }
        );
        let work = row.get(if flops { "flops" } else { "bytes" }).num();
        assert!(work > 0.0, "{id}");
        for isa in &supported {
            let cell = row.get("results").get(isa);
            if *isa == "scalar" && id == "gemm_1024" {
                assert_eq!(cell, &Json::Null, "scalar skips GEMM 1024");
                continue;
            }
            let rate = cell.get("rate").num();
            let best = cell.get("seconds_best").num();
            assert!(rate > 0.0 && best > 0.0, "{id} {isa}: {rate}");
            assert!(best <= cell.get("seconds_median").num(), "{id} {isa}");
            // The rate is the work over the best time.
            let expected = work / best / 1e9;
            assert!(
                (rate - expected).abs() <= 1e-6 * expected,
                "{id} {isa}: {rate} vs {expected}"
            );
            match cell.get("of_peak") {
                Json::Num(f) if flops => assert!(*f > 0.0, "{id} {isa}"),
                Json::Null if !flops => {}
                other => panic!("{id} {isa}: of_peak {other:?}"),
            }
        }
    }
    assert_eq!(rows[0].get("flops").num(), 64.0 * 235_200.0);
    let model = j.get("model").arr();
    assert_eq!(model.len(), 2 * supported.len(), "1 and 2 threads per ISA");
    for (m, (isa, threads)) in model
        .iter()
        .zip(supported.iter().flat_map(|isa| [(*isa, 1.0), (*isa, 2.0)]))
    {
        assert_eq!((m.get("isa").str(), m.get("threads").num()), (isa, threads));
        let rate = m.get("train_samples_per_sec").num();
        assert!(
            rate > 0.0 && m.get("eval_images_per_sec").num() > 0.0,
            "{m:?}"
        );
        let gflops = m.get("train_gflops").num();
        assert!((gflops - rate * 2_263_920.0 / 1e9).abs() <= 1e-9 * gflops.max(1.0));
    }
    assert_eq!(
        j.get("model_flops_per_image").get("train_step").num(),
        2_263_920.0
    );
}

#[test]
fn the_table_has_a_column_per_isa_and_a_line_per_kernel() {
    let (stdout, _) = expect(
        &simdnet(&["bench", "--quick", "--threads", "1"], &[]),
        0,
        &[],
    );
    let supported = names(&Isa::supported());
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("simdnet bench: "), "{}", lines[0]);
    let header = lines
        .iter()
        .find(|l| l.starts_with("kernel "))
        .expect("the kernel table's header");
    let columns: Vec<&str> = header.split_whitespace().collect();
    let mut expected = vec!["kernel", "shape", "unit"];
    expected.extend(&supported);
    assert_eq!(columns, expected);
    let peak = lines
        .iter()
        .find(|l| l.trim_start().starts_with("1 thread"))
        .unwrap();
    assert_eq!(
        peak.split_whitespace().count(),
        2 + supported.len(),
        "{peak}"
    );
    assert!(!stdout.contains("1 threads") && !stdout.contains("2 threads"));
    let labels = [
        "conv1 forward ",
        "conv1 backward (dW, db) ",
        "conv2 forward ",
        "conv2 backward (dX, dW, db) ",
        "fc1 forward ",
        "fc3 backward (dX, dW) ",
        "GEMM square ",
        "softmax-cross-entropy ",
        "SGD momentum step ",
        "ReLU backward ",
        "bias add ",
        "bias gradient ",
        "max-pool forward ",
        "max-pool backward ",
    ];
    // The kernel table: from its header to the next empty line.
    let kernel_lines: Vec<&str> = lines
        .iter()
        .copied()
        .skip_while(|l| !l.starts_with("kernel "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(kernel_lines.len(), KERNELS.len(), "{stdout}");
    for label in labels {
        assert!(
            kernel_lines.iter().any(|l| l.starts_with(label)),
            "{label}:\n{stdout}"
        );
    }
    for l in &kernel_lines {
        // The figures after the unit: one per ISA (a percentage sticks to its GFLOP/s).
        let unit = if l.contains(" GFLOP/s ") {
            "GFLOP/s"
        } else {
            "GB/s"
        };
        let cells = l.split(unit).nth(1).unwrap();
        let figures = cells
            .split_whitespace()
            .filter(|w| !w.starts_with('('))
            .count();
        assert_eq!(figures, supported.len(), "{l}");
        if unit == "GFLOP/s" && !l.contains("skipped") {
            assert_eq!(cells.matches("%)").count(), supported.len(), "{l}");
        }
    }
    let gemm_1024 = kernel_lines
        .iter()
        .find(|l| l.contains("1024x1024"))
        .unwrap();
    assert_eq!(gemm_1024.contains("skipped"), supported.contains(&"scalar"));
    let model: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            supported
                .iter()
                .any(|isa| l.starts_with(&format!("{isa} ")))
        })
        .collect();
    assert_eq!(
        model.len(),
        supported.len(),
        "one training line per ISA at 1 thread"
    );
    for m in model {
        let words: Vec<&str> = m.split_whitespace().collect();
        assert_eq!(words.len(), 6, "{m}");
        assert_eq!(words[1], "1");
    }
}

#[test]
fn one_isa_by_flag_or_environment() {
    let best = Isa::best().name();
    for (args, env) in [
        (vec!["bench", "--quick", "--json", "--isa", best], vec![]),
        (
            vec!["bench", "--quick", "--json"],
            vec![("SIMDNET_ISA", best)],
        ),
    ] {
        let (stdout, _) = expect(&simdnet(&args, &env), 0, &[]);
        let j = parse(&stdout);
        let isas: Vec<&str> = j
            .get("settings")
            .get("isas")
            .arr()
            .iter()
            .map(Json::str)
            .collect();
        assert_eq!(isas, [best], "{args:?} {env:?}");
        let Json::Obj(results) = j.get("kernels").arr()[0].get("results") else {
            panic!("results is an object");
        };
        assert_eq!(results.len(), 1);
        let Json::Obj(peaks) = j.get("peak") else {
            panic!("peak is an object");
        };
        assert_eq!(peaks.len(), 1);
    }
}

#[test]
fn bad_command_lines_exit_2_and_help_works() {
    let help = "For more information, try 'simdnet bench --help'.";
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (
            &["bench", "--isa", "bogus"],
            &[],
            "error: invalid --isa: unknown kernel ISA 'bogus': expected one of scalar, avx2, \
             avx512, neon",
        ),
        (
            &["bench", "--threads", "0"],
            &[],
            "error: invalid value '0' for '--threads': must be at least 1",
        ),
        (
            &["bench", "--threads", "many"],
            &[],
            "expected a whole number of at least 1",
        ),
        (&["bench", "--jsno"], &[], "(did you mean '--json'?)"),
        (
            &["bench"],
            &[("SIMDNET_ISA", "bogus")],
            "error: invalid SIMDNET_ISA: unknown kernel ISA 'bogus'",
        ),
    ];
    for (args, env, message) in cases {
        let (stdout, _) = expect(&simdnet(args, env), 2, &[message, help]);
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let unsupported = Isa::ALL.into_iter().find(|i| !i.is_supported());
    if let Some(isa) = unsupported {
        expect(
            &simdnet(&["bench", "--isa", isa.name()], &[]),
            2,
            &["is not supported by this CPU (supported: ", help],
        );
    }
    expect(
        &simdnet(&["bnech"], &[]),
        2,
        &["unknown command 'bnech' (did you mean 'bench'?)"],
    );
    for args in [
        &["bench", "--help"][..],
        &["help", "bench"],
        &["bench", "--quick", "-h"],
    ] {
        let (stdout, _) = expect(
            &simdnet(args, &[]),
            0,
            &[
                "Usage: simdnet bench",
                "--isa NAME",
                "--threads N",
                "--json",
                "--quick",
            ],
        );
        assert!(!stdout.contains("simdnet bench: "), "help measures nothing");
    }
    expect(&simdnet(&["--help"], &[]), 0, &["  bench "]);
}
