-- documents.replaces_document_id: the document a replacement version supersedes
-- (CDA relatedDocument typeCode RPLC), so a document's history reads as a chain:
-- set_id groups the versions, version_number orders them, replaces_document_id
-- names the one each version retired. Rows written before this migration have NULL.
ALTER TABLE documents
    ADD COLUMN IF NOT EXISTS replaces_document_id Nullable(String)
        COMMENT 'relatedDocument RPLC: the document id this version replaces' AFTER version_number;

ALTER TABLE documents
    COMMENT COLUMN document_code 'ClinicalDocument/code@code as sent (WS/T 500: the C code)';
