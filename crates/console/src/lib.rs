//! Runpool's web console, embedded: the files `vite build` made of `console/` at the
//! workspace root (see `build.rs`), each with its content type. `runpool-http` serves them
//! under `/console/`; the console itself only calls the public REST APIs.

/// One built file.
#[derive(Debug)]
pub struct Asset {
    /// Relative to the console's root, e.g. `index.html`, `assets/index-3f2a.js`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// Content-hashed (Vite's `assets/`): safe to cache for ever.
    pub immutable: bool,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The file at `path` (relative, no leading slash).
pub fn get(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The console's page.
pub fn index() -> &'static Asset {
    get("index.html").expect("the console build has an index.html")
}

/// Bytes embedded in the binary.
pub fn total_bytes() -> usize {
    ASSETS.iter().map(|a| a.bytes.len()).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_and_what_it_loads_are_embedded() {
        let index = super::index();
        assert!(index.content_type.starts_with("text/html"));
        let html = std::str::from_utf8(index.bytes).unwrap();
        if super::BUILT {
            // Every script and stylesheet the page names is in the table, under /console/.
            for part in html.split("/console/").skip(1) {
                let path = part.split('"').next().unwrap();
                assert!(super::get(path).is_some(), "{path} is not embedded");
            }
            assert!(super::ASSETS.iter().any(|a| a.path.ends_with(".js")));
            // Nothing is fetched from elsewhere at run time.
            assert!(
                !html.contains("http://") && !html.contains("https://"),
                "{html}"
            );
        }
    }
}
