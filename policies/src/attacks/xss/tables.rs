//! Static name tables for the XSS lexers: event handlers, elements, and the lookup helpers (no allocation: a name
//! is lower-cased into a stack buffer and matched against literal patterns).

/// The longest name the tables hold, plus room: longer tokens match nothing.
const MAX_NAME: usize = 48;

/// `name` in ASCII lower case, in a stack buffer, or `None` when too long to be in any table.
pub(super) fn lowered(name: &[u8]) -> Option<([u8; MAX_NAME], usize)> {
    let mut buf = [0u8; MAX_NAME];
    if name.len() > MAX_NAME {
        return None;
    }
    for (slot, byte) in buf.iter_mut().zip(name) {
        *slot = byte.to_ascii_lowercase();
    }
    Some((buf, name.len()))
}

/// Whether `name` (any case) is a DOM or legacy browser event handler attribute (`onload`, `onerror`, ...).
pub(super) fn is_event_handler(name: &[u8]) -> bool {
    let Some((buf, len)) = lowered(name) else { return false };
    let lower = buf.get(..len).unwrap_or_default();
    // Legacy handler names that browsers and plugins accepted without the `on` prefix.
    if matches!(lower, b"fscommand" | b"seeksegmenttime") {
        return true;
    }
    match lower.strip_prefix(b"on") {
        Some(event) => is_event(event),
        None => false,
    }
}

/// Whether `event` (lower case, without `on`) names an event a page can attach script to.
fn is_event(event: &[u8]) -> bool {
    if event.starts_with(b"webkit") || event.starts_with(b"moz") || event.starts_with(b"ms") {
        return event.len() > 6;
    }
    matches!(
        event,
        b"abort"
            | b"activate"
            | b"afterprint"
            | b"afterscriptexecute"
            | b"afterupdate"
            | b"animationcancel"
            | b"animationend"
            | b"animationiteration"
            | b"animationstart"
            | b"auxclick"
            | b"beforeactivate"
            | b"beforecopy"
            | b"beforecut"
            | b"beforedeactivate"
            | b"beforeeditfocus"
            | b"beforeinput"
            | b"beforematch"
            | b"beforepaste"
            | b"beforeprint"
            | b"beforescriptexecute"
            | b"beforetoggle"
            | b"beforeunload"
            | b"beforeupdate"
            | b"begin"
            | b"blur"
            | b"bounce"
            | b"cancel"
            | b"canplay"
            | b"canplaythrough"
            | b"cellchange"
            | b"change"
            | b"click"
            | b"close"
            | b"command"
            | b"contentvisibilityautostatechange"
            | b"contextlost"
            | b"contextmenu"
            | b"contextrestored"
            | b"controlselect"
            | b"copy"
            | b"cuechange"
            | b"cut"
            | b"dataavailable"
            | b"datasetchanged"
            | b"datasetcomplete"
            | b"dblclick"
            | b"deactivate"
            | b"drag"
            | b"dragdrop"
            | b"dragend"
            | b"dragenter"
            | b"dragexit"
            | b"dragleave"
            | b"dragover"
            | b"dragstart"
            | b"drop"
            | b"durationchange"
            | b"emptied"
            | b"end"
            | b"ended"
            | b"error"
            | b"errorupdate"
            | b"filterchange"
            | b"finish"
            | b"focus"
            | b"focusin"
            | b"focusout"
            | b"formdata"
            | b"fullscreenchange"
            | b"fullscreenerror"
            | b"gotpointercapture"
            | b"hashchange"
            | b"help"
            | b"input"
            | b"invalid"
            | b"keydown"
            | b"keypress"
            | b"keyup"
            | b"layoutcomplete"
            | b"load"
            | b"loadeddata"
            | b"loadedmetadata"
            | b"loadend"
            | b"loadstart"
            | b"losecapture"
            | b"lostpointercapture"
            | b"message"
            | b"messageerror"
            | b"mediacomplete"
            | b"mediaerror"
            | b"mousedown"
            | b"mouseenter"
            | b"mouseleave"
            | b"mousemove"
            | b"mouseout"
            | b"mouseover"
            | b"mouseup"
            | b"mousewheel"
            | b"move"
            | b"moveend"
            | b"movestart"
            | b"offline"
            | b"online"
            | b"outofsync"
            | b"pagehide"
            | b"pageshow"
            | b"paste"
            | b"pause"
            | b"pausing"
            | b"play"
            | b"playing"
            | b"pointercancel"
            | b"pointerdown"
            | b"pointerenter"
            | b"pointerleave"
            | b"pointermove"
            | b"pointerout"
            | b"pointerover"
            | b"pointerrawupdate"
            | b"pointerup"
            | b"popstate"
            | b"progress"
            | b"propertychange"
            | b"ratechange"
            | b"readystatechange"
            | b"redo"
            | b"repeat"
            | b"reset"
            | b"resize"
            | b"resizeend"
            | b"resizestart"
            | b"resume"
            | b"reverse"
            | b"rowdelete"
            | b"rowenter"
            | b"rowexit"
            | b"rowinserted"
            | b"rowsdelete"
            | b"rowsinserted"
            | b"scroll"
            | b"scrollend"
            | b"search"
            | b"securitypolicyviolation"
            | b"seek"
            | b"seeked"
            | b"seeking"
            | b"select"
            | b"selectionchange"
            | b"selectstart"
            | b"show"
            | b"slotchange"
            | b"stalled"
            | b"start"
            | b"stop"
            | b"storage"
            | b"submit"
            | b"suspend"
            | b"syncrestored"
            | b"timeerror"
            | b"timeupdate"
            | b"toggle"
            | b"touchcancel"
            | b"touchend"
            | b"touchmove"
            | b"touchstart"
            | b"trackchange"
            | b"transitioncancel"
            | b"transitionend"
            | b"transitionrun"
            | b"transitionstart"
            | b"undo"
            | b"unhandledrejection"
            | b"unload"
            | b"urlflip"
            | b"volumechange"
            | b"waiting"
            | b"wheel"
    )
}

/// How dangerous an element is on its own, before its attributes are looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Element {
    /// Runs script or loads active content by itself (`<script>`, `<iframe>`, `<object>`...).
    Active,
    /// Changes how the page loads or parses (`<base>`, `<meta>`, `<link>`, `<style>`, `<svg>`, `<math>`, `<xml>`,
    /// `<noscript>`, whose content is parsed twice...).
    Loader,
    /// Fetches a URL, plays media, takes focus or fires events without a click (`<img>`, `<video>`, `<body>`,
    /// `<input>`, `<marquee>`, `<details>`, SVG animation...): what handler payloads ride on.
    Eventful,
    /// An ordinary HTML element.
    Plain,
    /// Not an HTML element name.
    Unknown,
}

/// Classifies a tag name (any case).
pub(super) fn element(name: &[u8]) -> Element {
    let Some((buf, len)) = lowered(name) else { return Element::Unknown };
    match buf.get(..len).unwrap_or_default() {
        b"script" | b"iframe" | b"frame" | b"frameset" | b"object" | b"embed" | b"applet" | b"vmlframe" | b"layer"
        | b"ilayer" => Element::Active,
        b"base" | b"meta" | b"link" | b"style" | b"svg" | b"math" | b"xml" | b"import" | b"isindex" | b"portal"
        | b"handler" | b"listener" | b"template" | b"xss" | b"noscript" => Element::Loader,
        b"animate" | b"animatemotion" | b"animatetransform" | b"audio" | b"bgsound" | b"body" | b"button"
        | b"details" | b"dialog" | b"feimage" | b"foreignobject" | b"form" | b"html" | b"image" | b"img" | b"input"
        | b"keygen" | b"marquee" | b"picture" | b"select" | b"set" | b"source" | b"textarea" | b"track" | b"use"
        | b"video" => Element::Eventful,
        b"a" | b"abbr" | b"address" | b"area" | b"article" | b"aside" | b"b" | b"bdi" | b"bdo" | b"blink"
        | b"blockquote" | b"br" | b"canvas" | b"caption" | b"center" | b"cite" | b"code" | b"col" | b"colgroup"
        | b"command" | b"data" | b"datalist" | b"dd" | b"del" | b"dfn" | b"dir" | b"div" | b"dl" | b"dt" | b"em"
        | b"fieldset" | b"figcaption" | b"figure" | b"font" | b"footer" | b"h1" | b"h2" | b"h3" | b"h4" | b"h5"
        | b"h6" | b"head" | b"header" | b"hgroup" | b"hr" | b"i" | b"ins" | b"kbd" | b"label" | b"legend" | b"li"
        | b"listing" | b"main" | b"map" | b"mark" | b"menu" | b"menuitem" | b"meter" | b"multicol" | b"nav"
        | b"nextid" | b"nobr" | b"noembed" | b"noframes" | b"ol" | b"optgroup" | b"option" | b"output" | b"p"
        | b"param" | b"plaintext" | b"pre" | b"progress" | b"q" | b"rp" | b"rt" | b"ruby" | b"s" | b"samp"
        | b"search" | b"section" | b"slot" | b"small" | b"spacer" | b"span" | b"strike" | b"strong" | b"sub"
        | b"summary" | b"sup" | b"table" | b"tbody" | b"td" | b"tfoot" | b"th" | b"thead" | b"time" | b"title"
        | b"tr" | b"tt" | b"u" | b"ul" | b"var" | b"wbr" | b"xmp" => Element::Plain,
        _ => Element::Unknown,
    }
}

/// Whether a closing tag of `name` ends a context the page's own markup opened, so that what follows is parsed
/// as fresh markup (`</script>`, `</textarea>`, `</title>`...).
pub(super) fn is_context_closer(name: &[u8]) -> bool {
    let Some((buf, len)) = lowered(name) else { return false };
    matches!(
        buf.get(..len).unwrap_or_default(),
        b"script"
            | b"style"
            | b"title"
            | b"textarea"
            | b"noscript"
            | b"iframe"
            | b"xmp"
            | b"noembed"
            | b"noframes"
            | b"template"
            | b"select"
            | b"option"
            | b"plaintext"
    )
}
