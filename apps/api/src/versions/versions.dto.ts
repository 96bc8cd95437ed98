import { ApiProperty } from '@nestjs/swagger';
import type { Pt2Summary } from '@kiln/contracts';

export class ModelVersionResponseDto {
  @ApiProperty() id!: string;
  @ApiProperty() modelId!: string;
  @ApiProperty() number!: number;
  @ApiProperty() sizeBytes!: number;
  @ApiProperty({ description: 'sha256 of the uploaded file' }) fileSha256!: string;
  @ApiProperty({
    description:
      'sha256 of the archive Kiln stores for this version (the upload with its sample-input pickles emptied): ' +
      'what build workers compile and devices download as the portable fallback',
  })
  storedSha256!: string;
  @ApiProperty({ description: 'Bytes of the stored archive' }) storedSizeBytes!: number;
  @ApiProperty({ description: 'sha256 of the canonical model content: the cache identity' }) contentHash!: string;
  @ApiProperty() originalFilename!: string;
  @ApiProperty() createdAt!: string;
  @ApiProperty({
    description:
      'What the .pt2 reader extracted before anything touched torch: schema and torch version, op histogram, ' +
      'user inputs with dtypes and shapes (dynamic dims with ranges), parameter count and bytes.',
    type: 'object',
    additionalProperties: true,
  })
  summary!: Pt2Summary;
}
