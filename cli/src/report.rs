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
    /// Write to FILE instead of standard output
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<Utf8PathBuf>,
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
    let inputs = inputs(&args.inputs)?;
    let output = args.output.as_deref();
    match args.format {
        Format::Html => {
            let mut page = page::Page::default();
            each_document(
                &inputs,
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
            each_document(&inputs, |_| Ok(()), |()| Ok(()))?;
            let csv = args.format == Format::Csv;
            // An input changed between the two readings.
            let mut changed = None;
            write_to(output, |out| {
                if csv {
                    writeln!(out, "{}\r", rows::CSV_HEADER)?;
                }
                let written = each_document(
                    &inputs,
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
                    Ok(()) => Ok(()),
                }
            })?;
            if let Some(e) = changed {
                return Err(e);
            }
        }
    }
    Ok(status::OK)
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
/// document that is not an audit document, or whose host another document has, naming
/// both files.
fn each_document<T: Send>(
    inputs: &[Input],
    prepare: impl Fn(Document) -> io::Result<T> + Sync,
    mut each: impl FnMut(T) -> io::Result<()>,
) -> Result<(), ReadError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let mut hosts: HashMap<String, &str> = HashMap::new();
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
            for (host, prepared) in result.expect("every input parsed")? {
                if let Some(first) = hosts.insert(host.clone(), &input.name) {
                    return Err(ReadError::Cli(CliError::Data(format!(
                        "{}: host “{}” is also the host of {}: each server needs its own host \
                         name (whmtoken audit --host NAME)",
                        shown(&input.name),
                        shown(&host),
                        shown(first)
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
