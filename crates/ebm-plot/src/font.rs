//! The embedded bitmap font: 5x7-pixel glyphs (plus one descender row) for every printable ASCII character.
//!
//! Figures are rendered on CI machines and remote training boxes that have no fonts installed, so the crate
//! carries its own. Every glyph sits in a 5-column by 8-row box: rows 0..7 hold capitals, digits and the
//! x-height body of lower-case letters, row 7 holds the descenders of `g j p q y` and punctuation such as `,`
//! and `_`. Text is monospaced with one blank column between glyphs and is scaled by an integer factor (each
//! font pixel becomes a `scale x scale` block), which keeps it crisp at any size.
//!
//! The glyphs are designed for this crate and stored below as a readable "font sheet": six bands of sixteen
//! characters (codes 32..=127), `#` for an inked pixel and `.` for a blank one, parsed at compile time. Code 127
//! holds a hollow box that stands in for any character the font does not cover; accented Latin-1 letters are drawn
//! as their base letter.

/// Width of a glyph's box, in font pixels.
pub const GLYPH_WIDTH: u32 = 5;
/// Height of a glyph's box, in font pixels: a 7-row body plus one descender row.
pub const GLYPH_HEIGHT: u32 = 8;
/// Horizontal distance from one glyph to the next, in font pixels (glyph plus one blank column).
pub const ADVANCE: u32 = GLYPH_WIDTH + 1;
/// Vertical distance from one line of text to the next, in font pixels (glyph plus two blank rows).
pub const LINE_HEIGHT: u32 = GLYPH_HEIGHT + 2;

/// The font sheet: characters 32..=127 in six bands of sixteen, eight text lines per band, one space between
/// glyphs. Only `#` and `.` are read; everything else (spaces, newlines) is layout for human eyes.
const SHEET: &str = r"
..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... ..... ..... ..... ..... ....#
..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..... ..... ....#
..... ..#.. .#.#. ##### #.#.. ...#. #.#.. .#... .#... ...#. #.#.# ..#.. ..... ..... ..... ...#.
..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. ##### ..... ##### ..... ..#..
..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#.. ..... ..... ..... .#...
..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#.. .##.. ..... .##.. #....
..... ..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... ..... ..#.. ..... .##.. #....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .#... ..... ..... .....

.###. ..#.. .###. ##### ...#. ##### ..##. ##### .###. .###. ..... ..... ...#. ..... .#... .###.
#...# .##.. #...# ...#. ..##. #.... .#... ....# #...# #...# .##.. .##.. ..#.. ..... ..#.. #...#
#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...# .##.. .##.. .#... ##### ...#. ....#
#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .#### ..... ..... #.... ..... ....# ...#.
##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....# .##.. .##.. .#... ##### ...#. ..#..
#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#. .##.. ..#.. ..#.. ..... ..#.. .....
.###. .###. ##### .###. ...#. .###. .###. .#... .###. .##.. ..... .#... ...#. ..... .#... ..#..
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

.###. .###. ####. .###. ####. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.
#...# #...# #...# #...# #...# #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#
#.### #...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#
#.#.# ##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#
#.### #...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#
#.... #...# #...# #...# #...# #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#
.#### #...# ####. .###. ####. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....

####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###. #.... .###. ..#.. .....
#...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#... #.... ...#. .#.#. .....
#...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#... .#... ...#. #...# .....
####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#... ..#.. ...#. ..... .....
#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#... ...#. ...#. ..... .....
#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#... ....# ...#. ..... .....
#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###. ....# .###. ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... #####

.#... ..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##.. ..... ..... .....
..#.. ..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#.. ..... ..... .....
...#. .###. #.##. .###. .##.# .###. .#... .#### #.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###.
..... ....# ##..# #.... #..## #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...#
..... .#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#.. #.#.# #...# #...#
..... #...# #...# #...# #...# #.... .#... .#### #...# ..#.. ...#. #.#.. ..#.. #.#.# #...# #...#
..... .#### ####. .###. .#### .###. .#... ....# #...# .###. #..#. #..#. .###. #.#.# #...# .###.
..... ..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ..... ..... ..... .....

..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ...## ..#.. ##... ..... #####
..... ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. ..... #...#
####. .#### #.##. .#### ###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#... #...#
#...# #...# ##..# #.... .#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.# #...#
#...# #...# #.... .###. .#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#. #...#
####. .#### #.... ....# .#..# #..## .#.#. #.#.# .#.#. .#### .#... ..#.. ..#.. ..#.. ..... #...#
#.... ....# #.... ####. ..##. .##.# ..#.. .#.#. #...# ....# ##### ...## ..#.. ##... ..... #####
#.... ....# ..... ..... ..... ..... ..... ..... ..... .###. ..... ..... ..#.. ..... ..... .....
";

const FIRST: u32 = 32;
const COUNT: usize = 96;
const REPLACEMENT: usize = COUNT - 1;

/// Parses [`SHEET`] into one row-bitmask array per glyph (bit 4 = leftmost column). Runs at compile time, and a
/// malformed sheet (wrong number of pixels) fails the build.
const fn parse_sheet() -> [[u8; GLYPH_HEIGHT as usize]; COUNT] {
    let bytes = SHEET.as_bytes();
    let mut glyphs = [[0u8; GLYPH_HEIGHT as usize]; COUNT];
    let per_band_line = 16 * GLYPH_WIDTH as usize;
    let mut seen = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'#' || b == b'.' {
            // Pixel `seen` lies in band `seen / (8 * 80)`, text line `(seen / 80) % 8`, glyph `(seen % 80) / 5`.
            let band = seen / (GLYPH_HEIGHT as usize * per_band_line);
            let row = (seen / per_band_line) % GLYPH_HEIGHT as usize;
            let in_line = seen % per_band_line;
            let glyph = band * 16 + in_line / GLYPH_WIDTH as usize;
            let col = in_line % GLYPH_WIDTH as usize;
            if b == b'#' {
                glyphs[glyph][row] |= 1 << (GLYPH_WIDTH as usize - 1 - col);
            }
            seen += 1;
        }
        i += 1;
    }
    assert!(seen == COUNT * GLYPH_HEIGHT as usize * GLYPH_WIDTH as usize, "font sheet has the wrong number of pixels");
    glyphs
}

static GLYPHS: [[u8; GLYPH_HEIGHT as usize]; COUNT] = parse_sheet();

/// The bitmap of `c`: one byte per row, top row first, bit 4 being the leftmost column. Accented Latin-1
/// letters are drawn as their base letter (a title says "Fréchet"; 5x7 pixels leave no room for the accent).
/// Other characters outside printable ASCII (32..=126) get a hollow box, so unsupported text stays visible
/// instead of vanishing.
pub fn glyph(c: char) -> &'static [u8; GLYPH_HEIGHT as usize] {
    let code = base_letter(c) as u32;
    if (FIRST..FIRST + REPLACEMENT as u32).contains(&code) {
        &GLYPHS[(code - FIRST) as usize]
    } else {
        &GLYPHS[REPLACEMENT]
    }
}

/// The unaccented letter of an accented Latin-1 letter, in its case; any other character unchanged.
fn base_letter(c: char) -> char {
    let base = match c.to_lowercase().next().unwrap_or(c) {
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' | 'ø' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        _ => return c,
    };
    if c.is_uppercase() {
        base.to_ascii_uppercase()
    } else {
        base
    }
}

/// Whether font pixel (`col`, `row`) of `c` is inked; pixels outside the 5x8 box are blank.
pub fn glyph_pixel(c: char, col: u32, row: u32) -> bool {
    col < GLYPH_WIDTH && row < GLYPH_HEIGHT && glyph(c)[row as usize] & (1 << (GLYPH_WIDTH - 1 - col)) != 0
}

/// Width in canvas pixels of `text` drawn at `scale`: the widest of its `\n`-separated lines, without the blank
/// column after the last glyph. Empty text is 0 wide. Use it to place labels before drawing them.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let widest = text.split('\n').map(|line| line.chars().count() as u32).max().unwrap_or(0);
    if widest == 0 {
        0
    } else {
        (widest * ADVANCE - 1) * scale.max(1)
    }
}

/// Height in canvas pixels of `text` drawn at `scale`: one glyph box (descender included) per line, plus the
/// gaps between lines. Empty text still occupies one line, so layouts do not jump when a label is blank.
pub fn text_height(text: &str, scale: u32) -> u32 {
    let lines = text.split('\n').count() as u32;
    ((lines - 1) * LINE_HEIGHT + GLYPH_HEIGHT) * scale.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printable() -> impl Iterator<Item = char> {
        (32u8..=126).map(char::from)
    }

    #[test]
    fn every_printable_character_has_its_own_glyph() {
        let glyphs: Vec<(char, [u8; 8])> = printable().map(|c| (c, *glyph(c))).collect();
        for (i, (a, ga)) in glyphs.iter().enumerate() {
            if *a != ' ' {
                assert!(ga.iter().any(|&r| r != 0), "glyph {a:?} is blank");
            }
            assert_ne!(ga, glyph('\u{7f}'), "glyph {a:?} is the replacement box");
            for (b, gb) in &glyphs[i + 1..] {
                assert_ne!(ga, gb, "glyphs {a:?} and {b:?} are identical");
            }
        }
        assert!(glyph(' ').iter().all(|&r| r == 0), "space must be blank");
    }

    #[test]
    fn glyphs_stay_inside_their_box_and_descenders_use_the_last_row() {
        for c in printable() {
            assert!(glyph(c).iter().all(|&r| r < 1 << GLYPH_WIDTH), "{c:?}");
        }
        for c in ['g', 'j', 'p', 'q', 'y', '_', ','] {
            assert_ne!(glyph(c)[7], 0, "{c:?} should reach the descender row");
        }
        for c in ['A', 'Z', 'a', 'z', '0', '9', '.', '%'] {
            assert_eq!(glyph(c)[7], 0, "{c:?} should not reach the descender row");
        }
    }

    #[test]
    fn spot_check_shapes() {
        // `1` is a vertical stem with a foot; `-` a single bar across the middle row; `.` sits at the bottom.
        assert_eq!(glyph('1')[6], 0b01110);
        assert_eq!(glyph('-'), &[0, 0, 0, 0b11111, 0, 0, 0, 0]);
        assert!(glyph_pixel('.', 1, 6) && !glyph_pixel('.', 1, 0));
        assert!(!glyph_pixel('A', 5, 0) && !glyph_pixel('A', 0, 8));
    }

    #[test]
    fn unsupported_characters_fall_back_to_the_box() {
        assert_eq!(glyph('€'), glyph('\u{7f}'));
        assert_eq!(glyph('ℓ'), glyph('\u{7f}'));
        assert_eq!(glyph('\t'), glyph('\u{7f}'));
        assert_eq!(glyph('\u{7f}')[0], 0b11111);
    }

    #[test]
    fn accented_letters_are_drawn_as_their_base_letter() {
        for (accented, base) in [('é', 'e'), ('É', 'E'), ('ü', 'u'), ('ñ', 'n'), ('Ø', 'O'), ('ç', 'c')] {
            assert_eq!(glyph(accented), glyph(base), "{accented:?}");
        }
        assert_ne!(glyph('é'), glyph('\u{7f}'));
    }

    #[test]
    fn text_width_and_height() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("A", 1), 5);
        assert_eq!(text_width("AB", 1), 11);
        assert_eq!(text_width("loss", 2), (4 * 6 - 1) * 2);
        assert_eq!(text_width("ab\nlonger\nc", 1), 6 * 6 - 1);
        assert_eq!(text_width("é", 1), 5, "non-ASCII counts one glyph per char, not per byte");
        assert_eq!(text_height("x", 1), 8);
        assert_eq!(text_height("", 2), 16);
        assert_eq!(text_height("a\nb", 3), (10 + 8) * 3);
    }
}
