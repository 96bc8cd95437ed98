import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsBase64,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import type { UploadChecksumAlgorithm, UploadStatus } from '@kiln/database';
import { ModelVersionResponseDto } from '../versions/versions.dto.js';
import { MAX_PART_BYTES, MAX_PARTS, MIN_PART_BYTES } from './upload-plan.js';

export const UPLOAD_STATUSES: UploadStatus[] = ['uploading', 'completing', 'completed', 'failed', 'aborted', 'expired'];
/** Most part URLs one request may ask for (a client asks again as it goes). */
export const MAX_PART_URLS_PER_REQUEST = 100;

export class CreateUploadDto {
  @ApiProperty({ example: 'resnet.pt2', description: 'Original file name (kept on the version).' })
  @IsString()
  @MaxLength(255)
  filename!: string;

  @ApiProperty({ example: 5_368_709_120, description: 'Exact size of the file in bytes.' })
  @IsInt()
  @Min(1)
  sizeBytes!: number;

  @ApiPropertyOptional({
    description: `Part size (${MIN_PART_BYTES}..${MAX_PART_BYTES}); default KILN_UPLOAD_PART_SIZE_BYTES, grown to fit ${MAX_PARTS} parts.`,
  })
  @IsOptional()
  @IsInt()
  @Min(MIN_PART_BYTES)
  @Max(MAX_PART_BYTES)
  partSizeBytes?: number;

  @ApiPropertyOptional({
    enum: ['sha256', 'md5'],
    default: 'sha256',
    description: 'Checksum every part carries and the S3 server verifies (x-amz-checksum-sha256 or Content-MD5).',
  })
  @IsOptional()
  @IsIn(['sha256', 'md5'])
  checksumAlgorithm?: UploadChecksumAlgorithm;
}

export class UploadErrorDto {
  @ApiProperty() code!: string;
  @ApiProperty() message!: string;
}

export class UploadResponseDto {
  @ApiProperty() uploadId!: string;
  @ApiProperty() modelId!: string;
  @ApiProperty({ description: 'The id the version will have once the upload completes and validates' })
  versionId!: string;
  @ApiProperty() filename!: string;
  @ApiProperty() sizeBytes!: number;
  @ApiProperty() partSize!: number;
  @ApiProperty() partCount!: number;
  @ApiProperty({ enum: ['sha256', 'md5'] }) checksumAlgorithm!: UploadChecksumAlgorithm;
  @ApiProperty({ enum: UPLOAD_STATUSES }) status!: UploadStatus;
  @ApiProperty({ description: 'Parts must be uploaded and the upload completed before this' }) expiresAt!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({ nullable: true, type: UploadErrorDto, description: 'Why completion failed (status failed)' })
  error!: UploadErrorDto | null;
}

export class PartChecksumDto {
  @ApiProperty({ minimum: 1, maximum: MAX_PARTS })
  @IsInt()
  @Min(1)
  @Max(MAX_PARTS)
  partNumber!: number;

  @ApiPropertyOptional({ description: 'base64 of the part’s sha256 digest (uploads with checksumAlgorithm sha256)' })
  @IsOptional()
  @IsBase64()
  @Length(44, 44)
  sha256?: string;

  @ApiPropertyOptional({ description: 'base64 of the part’s md5 digest (uploads with checksumAlgorithm md5)' })
  @IsOptional()
  @IsBase64()
  @Length(24, 24)
  md5?: string;
}

export class RequestPartUrlsDto {
  @ApiProperty({ type: [PartChecksumDto] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_PART_URLS_PER_REQUEST)
  @ArrayUnique((p: PartChecksumDto) => p.partNumber)
  @ValidateNested({ each: true })
  @Type(() => PartChecksumDto)
  parts!: PartChecksumDto[];
}

export class PresignedPartDto {
  @ApiProperty() partNumber!: number;
  @ApiProperty({ description: 'Byte offset of the part in the file' }) offset!: number;
  @ApiProperty({ description: 'Exact byte length the PUT must carry' }) size!: number;
  @ApiProperty({ description: 'PUT the part’s bytes here' }) url!: string;
  @ApiProperty({
    description: 'Send these headers exactly (content-length and the checksum are signed)',
    type: 'object',
    additionalProperties: { type: 'string' },
  })
  headers!: Record<string, string>;
  @ApiProperty() expiresAt!: string;
}

export class PartUrlsResponseDto {
  @ApiProperty() uploadId!: string;
  @ApiProperty({ type: [PresignedPartDto] }) parts!: PresignedPartDto[];
}

export class StoredPartDto {
  @ApiProperty() partNumber!: number;
  @ApiProperty() size!: number;
  @ApiProperty({ description: 'S3 ETag of the part (the md5 of its bytes on S3 and SeaweedFS)' }) etag!: string;
  @ApiPropertyOptional({ description: 'base64 sha256, where the S3 server reports it' }) sha256?: string;
}

export class UploadStatusResponseDto extends UploadResponseDto {
  @ApiProperty({
    type: [StoredPartDto],
    description: 'Parts S3 already holds (status uploading): a resuming client skips these',
  })
  parts!: StoredPartDto[];
  @ApiProperty({ description: 'Sum of the sizes of the parts S3 holds' }) uploadedBytes!: number;
  @ApiProperty({ nullable: true, type: ModelVersionResponseDto, description: 'The version, once completed' })
  version!: ModelVersionResponseDto | null;
}

export class CompleteUploadDto {
  @ApiPropertyOptional({
    description: 'hex sha256 of the whole file; the API hashes the stored object and refuses a mismatch',
  })
  @IsOptional()
  @Matches(/^[0-9a-fA-F]{64}$/, { message: 'sha256 must be 64 hex digits' })
  sha256?: string;
}
