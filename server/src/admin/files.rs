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

/// Cells of every row of a file: XLSX (its first sheet) when it starts like a zip archive,
/// otherwise UTF-8 CSV (a leading byte-order mark is dropped).
pub fn table(bytes: &[u8]) -> Result<Vec<Vec<String>>, ApiError> {
    if bytes.starts_with(b"PK") {
        let mut book = Xlsx::new(Cursor::new(bytes))
            .map_err(|e| refused(format!("无法读取 Excel 文件：{e}")))?;
        let range = book
            .worksheet_range_at(0)
            .ok_or_else(|| refused("Excel 文件没有工作表"))?
            .map_err(|e| refused(format!("无法读取工作表：{e}")))?;
        return Ok(range
            .rows()
            .map(|row| {
                row.iter()
                    .map(|c| c.to_string().trim().to_owned())
                    .collect()
            })
            .collect());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| refused("CSV 文件须为 UTF-8 编码（Excel 另存为“CSV UTF-8”）"))?;
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| {
            r.map(|rec| rec.iter().map(|c| c.trim().to_owned()).collect())
                .map_err(|e| {
                    refused(format!(
                        "CSV 第{}行无法读取：{e}",
                        e.position().map_or(0, |p| p.line())
                    ))
                })
        })
        .collect()
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

/// The roster as CSV (UTF-8 with a byte-order mark, so Excel shows the Chinese).
pub fn roster_csv(rows: &[RosterRow]) -> Result<Vec<u8>, ApiError> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut w = csv::Writer::from_writer(&mut out);
        let err = |e: csv::Error| ApiError::Internal(e.to_string());
        w.write_record(COLUMNS).map_err(err)?;
        for row in rows {
            w.write_record(row.cells()).map_err(err)?;
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
