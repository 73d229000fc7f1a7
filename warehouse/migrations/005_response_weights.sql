-- schema version 5: every answer records which backend and which weights produced it.
-- backend: local | server | vllm | endpoint (the student), reference (a reference endpoint);
-- served_model: the request `model` of a served answer, the checkpoint path of a local one;
-- weights_sha256: sha256 over the checkpoint's safetensors files (null for references and
-- for answers stored before this version).
alter table responses add column backend varchar;
alter table responses add column served_model varchar;
alter table responses add column weights_sha256 varchar;
