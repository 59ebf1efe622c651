//! The roster as files: reading an office's XLSX (calamine) or CSV (csv) roster into rows, and
//! writing the template and the current roster as XLSX (rust_xlsxwriter) or CSV with the same
//! Chinese column titles.

use std::io::Cursor;
use sync_core::api_types::ErrorCode;

use calamine::{Reader, Xlsx};
use rust_xlsxwriter::{Format, Workbook};
use sync_core::import::roster::{RosterRow, COLUMNS};

use crate::error::ApiError;

/// Largest roster or geometry file accepted.
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: ErrorCode::BadImportFile,
        message: message.into(),
    }
}

/// Most bytes the files inside one zipped import (an XLSX, a Shapefile layer) may unpack to,
/// together. A 16 MiB upload of repeated XML can otherwise unpack to gigabytes in memory.
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;

/// Most rows a roster or code list may reach (a district has a few thousand chiefs).
pub const MAX_ROWS: u32 = 100_000;

/// Columns read from a spreadsheet; the templates use at most seven, the rest are ignored.
const MAX_COLUMNS: u32 = 32;

/// Refuses a zip archive (`what` names it for the office) whose entries unpack to more than
/// [`MAX_UNPACKED_BYTES`] together, counting the bytes actually inflated rather than the sizes
/// the archive declares, before anything reads it.
pub fn check_unpacked(bytes: &[u8], what: &str) -> Result<(), ApiError> {
    use std::io::Read;
    let unreadable = |e: &dyn std::fmt::Display| refused(format!("无法读取{what}：{e}"));
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| unreadable(&e))?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| unreadable(&e))?;
        let left = MAX_UNPACKED_BYTES - total;
        total += std::io::copy(&mut entry.by_ref().take(left + 1), &mut std::io::sink())
            .map_err(|e| unreadable(&e))?;
        if total > MAX_UNPACKED_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "{what}解压后超过 {} MB，请拆分后分批导入",
                MAX_UNPACKED_BYTES / 1024 / 1024
            )));
        }
    }
    Ok(())
}

/// Cells of every row of a file: XLSX (its first sheet) when it starts like a zip archive,
/// otherwise UTF-8 CSV (a leading byte-order mark is dropped). A cell that an export protected
/// from spreadsheet formulas (see [`roster_csv`]) reads back as written.
pub fn table(bytes: &[u8]) -> Result<Vec<Vec<String>>, ApiError> {
    if bytes.starts_with(b"PK") {
        return xlsx_table(bytes);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| refused("CSV 文件须为 UTF-8 编码（Excel 另存为“CSV UTF-8”）"))?;
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            refused(format!(
                "CSV 第{}行无法读取：{e}",
                e.position().map_or(0, |p| p.line())
            ))
        })?;
        if rows.len() >= MAX_ROWS as usize {
            return Err(too_many_rows());
        }
        rows.push(record.iter().map(|c| unprotect(c.trim())).collect());
    }
    Ok(rows)
}

fn too_many_rows() -> ApiError {
    refused(format!("表格超过 {MAX_ROWS} 行，请拆分后分批导入"))
}

/// The first sheet's cells, read one by one. calamine's whole-sheet range is a dense grid from
/// the first used cell to the last: a tiny file with a cell in A1 and one in XFD1048576 would
/// ask for seventeen billion cells, so cells past [`MAX_ROWS`] refuse the file and columns past
/// the template's are skipped.
fn xlsx_table(bytes: &[u8]) -> Result<Vec<Vec<String>>, ApiError> {
    check_unpacked(bytes, "Excel 文件")?;
    let mut book =
        Xlsx::new(Cursor::new(bytes)).map_err(|e| refused(format!("无法读取 Excel 文件：{e}")))?;
    let first = book
        .sheet_names()
        .into_iter()
        .next()
        .ok_or_else(|| refused("Excel 文件没有工作表"))?;
    let mut cells = book
        .worksheet_cells_reader(&first)
        .map_err(|e| refused(format!("无法读取工作表：{e}")))?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    while let Some(cell) = cells
        .next_cell()
        .map_err(|e| refused(format!("无法读取工作表：{e}")))?
    {
        let (row, col) = cell.get_position();
        if row >= MAX_ROWS {
            return Err(too_many_rows());
        }
        if col >= MAX_COLUMNS {
            continue;
        }
        let text = calamine::Data::from(cell.get_value().clone()).to_string();
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let (row, col) = (row as usize, col as usize);
        if rows.len() <= row {
            rows.resize_with(row + 1, Vec::new);
        }
        if rows[row].len() <= col {
            rows[row].resize_with(col + 1, String::new);
        }
        rows[row][col] = unprotect(text);
    }
    Ok(rows)
}

/// Characters that make a spreadsheet read a cell as a formula (`=HYPERLINK(…)`, `+1`, `@SUM`,
/// a leading tab or carriage return).
fn formula_start(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// A cell as a spreadsheet shows it as text: a leading apostrophe before a formula character,
/// so a name like `=HYPERLINK("http://…")` opens as that text and never runs.
fn protect(text: &str) -> String {
    if formula_start(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The cell an export [`protect`]ed, as it was.
fn unprotect(text: &str) -> String {
    match text.strip_prefix('\'') {
        Some(rest) if formula_start(rest) => rest.to_owned(),
        _ => text.to_owned(),
    }
}

/// The roster's data rows `(spreadsheet row number, row)`, after a header row with the
/// template's titles; blank rows are skipped.
pub fn roster_rows(bytes: &[u8]) -> Result<Vec<(usize, RosterRow)>, ApiError> {
    let table = table(bytes)?;
    let Some(header) = table.first() else {
        return Err(refused("文件是空的"));
    };
    let titles: Vec<&str> = header.iter().map(|s| s.trim()).collect();
    if titles.len() < COLUMNS.len() || titles[..COLUMNS.len()] != COLUMNS {
        return Err(refused(format!(
            "第1行应为表头：{}（请使用下载的模板）",
            COLUMNS.join("、")
        )));
    }
    Ok(table
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, cells)| cells.iter().any(|c| !c.trim().is_empty()))
        .map(|(i, cells)| (i + 1, RosterRow::from_cells(cells)))
        .collect())
}

fn xlsx_error(e: rust_xlsxwriter::XlsxError) -> ApiError {
    ApiError::Internal(format!("writing the roster: {e}"))
}

/// The roster as XLSX: the header and `rows` on the first sheet, a sheet of instructions.
pub fn roster_xlsx(rows: &[RosterRow]) -> Result<Vec<u8>, ApiError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    let sheet = book.add_worksheet();
    sheet.set_name("河长名录").map_err(xlsx_error)?;
    for (col, title) in COLUMNS.iter().enumerate() {
        let col = u16::try_from(col).unwrap_or(0);
        sheet
            .write_string_with_format(0, col, *title, &bold)
            .map_err(xlsx_error)?;
        let width = if col == 5 { 40 } else { 16 };
        sheet.set_column_width(col, width).map_err(xlsx_error)?;
    }
    // The phone column is text, so Excel keeps every digit.
    sheet.set_column_format(6, &text).map_err(xlsx_error)?;
    for (i, row) in rows.iter().enumerate() {
        let r = u32::try_from(i + 1).unwrap_or(u32::MAX);
        for (col, cell) in row.cells().iter().enumerate() {
            let col = u16::try_from(col).unwrap_or(0);
            sheet.write_string(r, col, *cell).map_err(xlsx_error)?;
        }
    }
    let help = book.add_worksheet();
    help.set_name("填写说明").map_err(xlsx_error)?;
    help.set_column_width(0, 24).map_err(xlsx_error)?;
    help.set_column_width(1, 80).map_err(xlsx_error)?;
    let lines = [
        ("姓名", "河长、林长或田长本人姓名"),
        (
            "职务",
            "本人职务，如 区委书记、街道办事处主任、村党支部书记",
        ),
        ("层级", "区级、街道级（乡镇级）或村级，须与行政区划一致"),
        ("体系", "河长、林长或田长"),
        (
            "行政区划",
            "区划名称（如 桑梓店街道）；重名时写上级，如 桑梓店街道/小寨村；也可填12位区划代码",
        ),
        (
            "负责河段/林区/网格",
            "已登记的河段、林区或网格名称，多个用顿号“、”分隔，须在该行政区划内",
        ),
        ("手机号", "11位手机号，作为登录账号；同一人只写一行"),
        (
            "",
            "导入前先“预检”：逐行显示将新增、变更、不变或拒绝及原因；有拒绝行时整表不导入。",
        ),
    ];
    for (i, (a, b)) in lines.iter().enumerate() {
        let r = u32::try_from(i).unwrap_or(0);
        help.write_string_with_format(r, 0, *a, &bold)
            .map_err(xlsx_error)?;
        help.write_string(r, 1, *b).map_err(xlsx_error)?;
    }
    book.save_to_buffer().map_err(xlsx_error)
}

/// The roster as CSV (UTF-8 with a byte-order mark, so Excel shows the Chinese), every cell
/// that would start a formula [`protect`]ed. The XLSX export needs no such care: its cells are
/// written as text, which Excel never evaluates.
pub fn roster_csv(rows: &[RosterRow]) -> Result<Vec<u8>, ApiError> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let err = |e: csv::Error| ApiError::Internal(e.to_string());
        w.write_record(COLUMNS).map_err(err)?;
        for row in rows {
            w.write_record(row.cells().map(protect)).map_err(err)?;
        }
        w.flush().map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_and_an_export_read_back() {
        let row = RosterRow::from_cells(
            &[
                "张三",
                "街道办主任",
                "街道级",
                "河长",
                "桑梓店街道",
                "小清河桑梓店段、鹊山水库",
                "13800000001",
            ]
            .map(String::from),
        );
        assert!(roster_rows(&roster_xlsx(&[]).unwrap()).unwrap().is_empty());
        let back = roster_rows(&roster_xlsx(std::slice::from_ref(&row)).unwrap()).unwrap();
        assert_eq!(back, vec![(2, row.clone())]);
        let back = roster_rows(&roster_csv(std::slice::from_ref(&row)).unwrap()).unwrap();
        assert_eq!(back, vec![(2, row)]);
        assert!(roster_rows("姓名,电话\n张三,1".as_bytes()).is_err());
        assert!(roster_rows(&[0xff, 0xfe, 0x00]).is_err());
    }
}
