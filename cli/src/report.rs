//! `whmtoken report`: a fleet's audit documents (`whmtoken audit --json`, one per server)
//! as one self-contained HTML page (the default), or as CSV or JSON Lines for spreadsheets
//! and SIEMs. Reads only its inputs, never a server.
//!
//! Every input is read and checked (an audit document, a host no other document has)
//! before anything is written, so that a refused fleet leaves no half-written output.

mod document;
mod page;
mod rows;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{CliError, status};
use crate::output::shown;
use document::Document;

/// `whmtoken report [--format html|csv|jsonl] [-o FILE] INPUT...`
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Audit documents (whmtoken audit --json): files, folders of them (their *.json
    /// files), or - for standard input; a file may hold several documents one after another
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<Utf8PathBuf>,
    /// html: one self-contained page; csv: one row per finding; jsonl: one object per
    /// account and per finding
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Write to FILE instead of standard output (never one of the inputs, nor into an
    /// input folder)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<Utf8PathBuf>,
    /// A server that could not be audited (its audit failed, or it was unreachable): the
    /// page names it, and the CSV and JSON Lines have a critical finding `not_audited` for
    /// it; repeatable
    #[arg(long, value_name = "HOST")]
    pub missing: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Html,
    Csv,
    Jsonl,
}

/// One input: its name as errors show it, and where its bytes are.
struct Input {
    name: String,
    source: Source,
}

enum Source {
    File(Utf8PathBuf),
    /// Standard input, read once.
    Bytes(Vec<u8>),
}

/// Writes the report and returns the exit status.
pub fn run(args: ReportArgs) -> Result<u8, CliError> {
    let missing = missing(&args.missing)?;
    let output = args.output.as_deref();
    if let Some(output) = output {
        output_apart(output, &args.inputs)?;
    }
    let inputs = inputs(&args.inputs)?;
    match args.format {
        Format::Html => {
            let mut page = page::Page::default();
            page.set_missing(&missing);
            each_document(
                &inputs,
                &missing,
                |document| Ok(page::Server::new(document)),
                |server| {
                    page.add(server);
                    Ok(())
                },
            )?;
            let generated = jiff::Timestamp::now().as_second();
            write_to(output, |out| page.write(out, generated))?;
        }
        Format::Csv | Format::Jsonl => {
            // Checked first, written second: each document is parsed twice, and only a
            // few are held at once.
            each_document(&inputs, &missing, |_| Ok(()), |()| Ok(()))?;
            let csv = args.format == Format::Csv;
            // An input changed between the two readings.
            let mut changed = None;
            write_to(output, |out| {
                if csv {
                    writeln!(out, "{}\r", rows::CSV_HEADER)?;
                }
                let written = each_document(
                    &inputs,
                    &missing,
                    |document| {
                        let mut rows = Vec::new();
                        if csv {
                            rows::csv(&document, &mut rows)?;
                        } else {
                            rows::jsonl(&document, &mut rows)?;
                        }
                        Ok(rows)
                    },
                    |rows| out.write_all(&rows),
                );
                match written {
                    Err(ReadError::Write(e)) => Err(e),
                    Err(ReadError::Cli(e)) => {
                        changed = Some(e);
                        Ok(())
                    }
                    Ok(()) => {
                        if csv {
                            rows::missing_csv(&missing, out)
                        } else {
                            rows::missing_jsonl(&missing, out)
                        }
                    }
                }
            })?;
            if let Some(e) = changed {
                return Err(e);
            }
        }
    }
    Ok(status::OK)
}

/// The hosts given with `--missing`, sorted; refuses an empty one, or one given twice
/// (host names compared as DNS compares them, regardless of case).
fn missing(given: &[String]) -> Result<Vec<String>, CliError> {
    let mut seen = HashMap::new();
    for host in given {
        if host.trim().is_empty() {
            return Err(CliError::Argument(
                "--missing needs a host name, not an empty one".to_owned(),
            ));
        }
        if let Some(first) = seen.insert(host.to_lowercase(), host) {
            return Err(CliError::Argument(format!(
                "--missing “{}” given twice (as “{}”): host names are compared regardless of case",
                shown(host),
                shown(first)
            )));
        }
    }
    let mut hosts = given.to_vec();
    hosts.sort();
    Ok(hosts)
}

/// Refuses an output that is one of the inputs or inside an input folder: writing it
/// would destroy an audit document, or add the report to the documents read next time.
fn output_apart(output: &Utf8Path, named: &[Utf8PathBuf]) -> Result<(), CliError> {
    if output == "-" {
        return Ok(());
    }
    // The output's folder made absolute (the file may not exist yet), then its name.
    let absolute = |path: &Utf8Path| -> Option<std::path::PathBuf> {
        if let Ok(real) = path.canonicalize() {
            return Some(real);
        }
        let parent = match path.parent() {
            Some(p) if !p.as_str().is_empty() => p,
            _ => Utf8Path::new("."),
        };
        Some(parent.canonicalize().ok()?.join(path.file_name()?))
    };
    let Some(out) = absolute(output) else {
        return Ok(());
    };
    for input in named.iter().filter(|p| *p != "-") {
        let Ok(real) = input.canonicalize() else {
            continue;
        };
        let clash = if real.is_dir() {
            out.starts_with(&real)
        } else {
            out == real
        };
        if clash {
            return Err(CliError::Argument(format!(
                "-o {}: {} {}: write the report elsewhere",
                shown(output.as_str()),
                if real.is_dir() {
                    "is inside the input folder"
                } else {
                    "is the input"
                },
                shown(input.as_str())
            )));
        }
    }
    Ok(())
}

/// The inputs named on the command line, each folder replaced by its `*.json` files
/// (sorted by name), standard input read.
fn inputs(named: &[Utf8PathBuf]) -> Result<Vec<Input>, CliError> {
    let mut inputs = Vec::new();
    let mut stdin_read = false;
    for path in named {
        if path == "-" {
            if std::mem::replace(&mut stdin_read, true) {
                return Err(CliError::Usage("- (standard input) given twice".to_owned()));
            }
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|source| input_error("standard input", source))?;
            inputs.push(Input {
                name: "standard input".to_owned(),
                source: Source::Bytes(bytes),
            });
        } else if path.is_dir() {
            let mut files = Vec::new();
            let entries = path.read_dir_utf8().map_err(|e| input_error(path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| input_error(path, e))?;
                let file = entry.path();
                if file.extension() == Some("json") && file.is_file() {
                    files.push(file.to_owned());
                }
            }
            files.sort();
            inputs.extend(files.into_iter().map(file_input));
        } else {
            inputs.push(file_input(path.clone()));
        }
    }
    if inputs.is_empty() {
        let named: Vec<String> = named.iter().map(|p| shown(p.as_str())).collect();
        return Err(CliError::Data(format!(
            "no audit document in {}: a folder's documents are its *.json files",
            named.join(", ")
        )));
    }
    Ok(inputs)
}

fn file_input(path: Utf8PathBuf) -> Input {
    Input {
        name: path.to_string(),
        source: Source::File(path),
    }
}

fn input_error(name: impl ToString, source: io::Error) -> CliError {
    CliError::Input {
        name: shown(&name.to_string()),
        source,
    }
}

/// Why the documents could not be gone through.
enum ReadError {
    Cli(CliError),
    Write(io::Error),
}

impl From<ReadError> for CliError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Cli(e) => e,
            ReadError::Write(e) => CliError::Output(e),
        }
    }
}

/// Parses every document of `inputs`, several inputs at once, runs `prepare` on each
/// where it was parsed, and hands `each` what it made, in the inputs' order; refuses a
/// document that is not an audit document, has an empty host, or whose host another
/// document has (regardless of case, as DNS names) or is given with `--missing`, naming
/// both files (and which document of a file holding several).
fn each_document<T: Send>(
    inputs: &[Input],
    missing: &[String],
    prepare: impl Fn(Document) -> io::Result<T> + Sync,
    mut each: impl FnMut(T) -> io::Result<()>,
) -> Result<(), ReadError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let mut hosts: HashMap<String, String> = missing
        .iter()
        .map(|h| (h.to_lowercase(), "--missing".to_owned()))
        .collect();
    // A few inputs at a time, so that only those are held at once.
    for chunk in inputs.chunks(threads * 2) {
        let next = AtomicUsize::new(0);
        let parsed: Vec<Mutex<Option<Parsed<T>>>> =
            chunk.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..threads.min(chunk.len()) {
                scope.spawn(|| {
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(input) = chunk.get(at) else { break };
                        let result = parse(input, &prepare);
                        *parsed[at].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                    }
                });
            }
        });
        for (input, result) in chunk.iter().zip(parsed) {
            let result = result.into_inner().unwrap_or_else(|e| e.into_inner());
            let documents = result.expect("every input parsed")?;
            let several = documents.len() > 1;
            for (position, (host, prepared)) in documents.into_iter().enumerate() {
                let name = if several {
                    format!("{} (document {})", input.name, position + 1)
                } else {
                    input.name.clone()
                };
                if host.trim().is_empty() {
                    return Err(ReadError::Cli(CliError::Data(format!(
                        "{}: the host is empty: each server needs its host name (whmtoken \
                         audit --host NAME)",
                        shown(&name)
                    ))));
                }
                if let Some(first) = hosts.insert(host.to_lowercase(), name.clone()) {
                    let why = if first == "--missing" {
                        "is also given with --missing".to_owned()
                    } else {
                        format!("is also the host of {}", shown(&first))
                    };
                    return Err(ReadError::Cli(CliError::Data(format!(
                        "{}: host “{}” {why} (host names are compared regardless of case): \
                         each server needs its own host name (whmtoken audit --host NAME)",
                        shown(&name),
                        shown(&host),
                    ))));
                }
                each(prepared).map_err(ReadError::Write)?;
            }
        }
    }
    Ok(())
}

/// What one input gave: each document's host and what `prepare` made of it.
type Parsed<T> = Result<Vec<(String, T)>, ReadError>;

/// Reads and parses one input, and prepares each of its documents.
fn parse<T>(input: &Input, prepare: &impl Fn(Document) -> io::Result<T>) -> Parsed<T> {
    let read;
    let bytes = match &input.source {
        Source::Bytes(bytes) => bytes.as_slice(),
        Source::File(path) => {
            read = std::fs::read(path).map_err(|e| ReadError::Cli(input_error(&input.name, e)))?;
            read.as_slice()
        }
    };
    let documents = document::parse_all(bytes).map_err(|why| {
        ReadError::Cli(CliError::Data(format!(
            "{}: not an audit document (whmtoken audit --json): {}",
            shown(&input.name),
            shown(&why)
        )))
    })?;
    documents
        .into_iter()
        .map(|document| {
            let host = document.host.clone();
            prepare(document)
                .map(|p| (host, p))
                .map_err(ReadError::Write)
        })
        .collect()
}

/// Runs `write` on the output: `path`, else standard output.
fn write_to(
    path: Option<&Utf8Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), CliError> {
    match path {
        Some(path) if path != "-" => {
            let failed = |source| CliError::OutputFile {
                name: shown(path.as_str()),
                source,
            };
            let file = std::fs::File::create(path).map_err(failed)?;
            let mut out = io::BufWriter::with_capacity(1 << 20, file);
            write(&mut out).and_then(|()| out.flush()).map_err(failed)
        }
        _ => {
            let mut out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
            match write(&mut out).and_then(|()| out.flush()) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(CliError::Output(e)),
                _ => Ok(()),
            }
        }
    }
}
