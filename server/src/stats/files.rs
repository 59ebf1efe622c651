//! Tables as files: CSV (UTF-8 with a byte-order mark, so Excel on a Chinese Windows reads the
//! titles right) and XLSX (a header block naming the period and filters above a frozen title row,
//! number formats per column kind, one sheet per table). Numbers are written unrounded; the
//! spreadsheet's format rounds what it shows, so a formula over a column adds the exact figures.

use rust_xlsxwriter::{Color, Format, FormatAlign, Workbook, XlsxError};

use super::tables::{Cell, Kind, Table};

/// The lines written above every table: title, period, filters, generation time.
#[derive(Debug, Clone)]
pub struct Heading {
    pub title: String,
    pub lines: Vec<String>,
}

/// UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A text cell as a spreadsheet program reads it back as text. Excel and WPS take a cell that
/// begins with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula, so a category or
/// department name typed on a phone could open links or run commands on a supervisor's
/// computer; such a cell is written with a leading apostrophe, which those programs show as
/// plain text (OWASP's advice for CSV injection). Numbers are never text cells, so a negative
/// figure stays a number. XLSX needs none of this: its text cells are typed as strings.
pub fn inert(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

/// One table as CSV: the byte-order mark, the Chinese titles, then the rows.
pub fn csv(table: &Table) -> Result<Vec<u8>, csv::Error> {
    let mut out = BOM.to_vec();
    {
        let mut writer = csv::Writer::from_writer(&mut out);
        writer.write_record(table.columns.iter().map(|c| c.title))?;
        for row in &table.rows {
            writer.write_record(row.iter().map(|cell| match cell {
                Cell::Text(s) => inert(s),
                Cell::Count(n) => n.to_string(),
                Cell::Number(x) => x.to_string(),
                Cell::Empty => String::new(),
            }))?;
        }
        writer.flush()?;
    }
    Ok(out)
}

/// Row of the column titles: below the heading block and a blank line.
pub fn title_row(heading: &Heading) -> u32 {
    heading.lines.len() as u32 + 2
}

/// Every table as one sheet of a workbook.
pub fn xlsx(heading: &Heading, tables: &[Table]) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let title = Format::new().set_bold().set_font_size(14);
    let header = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xDDEBF7))
        .set_align(FormatAlign::Center)
        .set_text_wrap();
    let count = Format::new().set_num_format("0");
    let decimal = Format::new().set_num_format("0.00");
    let percent = Format::new().set_num_format("0.0%");
    for table in tables {
        let sheet = workbook.add_worksheet();
        sheet.set_name(table.title)?;
        sheet.write_string_with_format(0, 0, &heading.title, &title)?;
        for (i, line) in heading.lines.iter().enumerate() {
            sheet.write_string(i as u32 + 1, 0, line)?;
        }
        let top = title_row(heading);
        for (c, column) in table.columns.iter().enumerate() {
            let c = c as u16;
            sheet.write_string_with_format(top, c, column.title, &header)?;
            let width = match column.kind {
                Kind::Text => 18.0,
                _ => 12.0,
            };
            sheet.set_column_width(c, width)?;
        }
        sheet.set_freeze_panes(top + 1, 0)?;
        for (r, row) in table.rows.iter().enumerate() {
            let r = top + 1 + r as u32;
            for (c, (cell, column)) in row.iter().zip(&table.columns).enumerate() {
                let c = c as u16;
                let format = match column.kind {
                    Kind::Percent => &percent,
                    Kind::Decimal => &decimal,
                    Kind::Count | Kind::Text => &count,
                };
                match cell {
                    Cell::Text(s) => {
                        sheet.write_string(r, c, s)?;
                    }
                    Cell::Count(n) => {
                        sheet.write_number_with_format(r, c, *n as f64, format)?;
                    }
                    Cell::Number(x) => {
                        sheet.write_number_with_format(r, c, *x, format)?;
                    }
                    Cell::Empty => {}
                }
            }
        }
    }
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_that_a_spreadsheet_would_run_is_marked() {
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(inert(formula), format!("'{formula}"));
        }
        for plain in ["河道垃圾", "river.garbage", "", "a=b", "'quoted"] {
            assert_eq!(inert(plain), plain);
        }
    }
}
